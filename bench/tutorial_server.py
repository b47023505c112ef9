"""A faithful reproduction of the tutorial's Flask server, the baseline of the benchmark.

As in the tutorial: Flask's own threaded server, one `/predict` route taking the multipart field
`img`, and on every request it rebuilds the network, rereads the parameter file, preprocesses
with gluon's transforms and runs an un-hybridized forward pass on the CPU, answering a sentence.

    MODEL_PARAMS=function/weights/cifar_resnet20_v1.params PORT=5000 python bench/tutorial_server.py
"""

import os

import mxnet as mx
from flask import Flask, request
from gluoncv.model_zoo import get_model
from mxnet import nd
from mxnet.gluon.data.vision import transforms

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PARAMS = os.environ.get("MODEL_PARAMS", "function/weights/cifar_resnet20_v1.params")
app = Flask(__name__)

transform_fn = transforms.Compose(
    [
        transforms.Resize(32),
        transforms.CenterCrop(32),
        transforms.ToTensor(),
        transforms.Normalize([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
    ]
)


@app.route("/predict", methods=["POST"])
def predict():
    img = mx.image.imdecode(request.files["img"].read())
    net = get_model("cifar_resnet20_v1", classes=10)
    net.load_parameters(PARAMS, ctx=mx.cpu())
    img = transform_fn(img)
    pred = net(img.expand_dims(axis=0))
    ind = nd.argmax(pred, axis=1).astype("int")
    return "The input picture is classified as [%s], with probability %.3f." % (  # noqa: UP031 - as the tutorial
        CLASS_NAMES[ind.asscalar()],
        nd.softmax(pred)[0][ind].asscalar(),
    )


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
