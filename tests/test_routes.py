"""The route table and matching, called directly: trailing slashes, HEAD, 404 and 405, the model name."""

import pytest

from function import routes
from function.config import Settings
from function.errors import MethodNotAllowed, NotFound
from function.protocols import kserve_v1, oip_v2, operations, tutorial


@pytest.mark.parametrize(
    ("path", "method", "view"),
    [
        ("/predict/", "POST", tutorial.predict),  # a trailing slash names the same route
        ("//", "GET", operations.service_info),
        ("/metrics", "HEAD", operations.metrics),  # HEAD is GET without a body
        ("/v1/models/cifar10:predict", "POST", kserve_v1.predict),
        ("/v2/models/cifar10/infer/", "POST", oip_v2.infer),
    ],
)
def test_each_path_and_method_finds_its_view(path: str, method: str, view) -> None:
    route, found = routes.match(routes.table(Settings()), path, method, "cifar10")
    assert found is view and route.template == routes.template_of(path)


def test_only_the_oip_routes_answer_errors_in_the_oip_shape() -> None:
    oip = {template for template, route in routes.table(Settings()).items() if route.oip}
    assert oip == {t for t in routes.table(Settings()) if t.startswith("/v2")}


def test_an_unknown_model_and_an_unknown_path_are_404_with_their_own_message() -> None:
    table = routes.table(Settings())
    with pytest.raises(NotFound, match="no model at /v2/models/imagenet/infer; this function serves 'cifar10'"):
        routes.match(table, "/v2/models/imagenet/infer/", "POST", "cifar10")
    with pytest.raises(NotFound, match="no route /nowhere; see GET / for the routes"):
        routes.match(table, "/nowhere", "GET", "cifar10")


def test_a_wrong_method_is_405_naming_the_allowed_ones() -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        routes.match(routes.table(Settings()), "/", "DELETE", "cifar10")
    assert refused.value.status == 405 and refused.value.headers == {"Allow": "GET, HEAD, POST"}
    with pytest.raises(MethodNotAllowed) as refused:
        routes.match(routes.table(Settings()), "/predict", "GET", "cifar10")
    assert refused.value.headers == {"Allow": "POST"}  # no GET there, so no HEAD either


def test_the_model_name_setting_names_the_model_routes() -> None:
    table = routes.table(Settings(model_name="flowers"))
    assert "/v2/models/flowers/infer" in table and "/v1/models/flowers:predict" in table
    assert not any("cifar10" in template for template in table)
