"""The benchmark's own parts that can go wrong silently: its request bodies, photos, wrk, hey and py-spy parsing.

Nothing here is timed; `make bench` itself is not part of the test suite.
"""

import io
import json
from pathlib import Path

from PIL import Image

from bench import report
from bench.load import kserve_v1, multipart, parse, parse_hey
from bench.photos import photo
from bench.profile import parse as parse_stacks
from bench.profile import summarize
from bench.queue_proxy import environment, go_max_procs
from function.config import Settings
from function.http import Request
from function.protocols import kserve_v1 as v1
from function.protocols.tutorial import image_bytes

JPEG = (Path(__file__).parent / "data" / "horse.jpg").read_bytes()
RESULTS = Path(__file__).parents[1] / "bench" / "results" / "latest.json"

WRK_ANSWERED = """Running 1s test @ http://127.0.0.1:18999/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.36ms    1.64ms   9.17ms   84.65%
    Req/Sec     2.06k   245.12     2.47k    63.64%
  Latency Distribution
     50%  550.00us
     75%    1.80ms
     90%    3.84ms
     99%    7.60ms
  2252 requests in 1.10s, 1.19MB read
  Non-2xx or 3xx responses: 2252
Requests/sec:   2047.77
Transfer/sec:      1.08MB
"""
WRK_SILENT = """Running 1s test @ http://127.0.0.1:18997/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 1.00s, 0.00B read
Requests/sec:      0.00
Transfer/sec:       0.00B
"""

HEY_ANSWERED = """
Summary:
  Total:\t0.2066 secs
  Slowest:\t0.0584 secs
  Fastest:\t0.0024 secs
  Average:\t0.0184 secs
  Requests/sec:\t193.5824

  Total data:\t9960 bytes
  Size/request:\t249 bytes

Response time histogram:
  0.002 [1]\t|###
  0.008 [13]\t|########################################
  0.014 [5]\t|###############
  0.019 [7]\t|######################
  0.025 [3]\t|#########
  0.030 [2]\t|######
  0.036 [3]\t|#########
  0.042 [1]\t|###
  0.047 [1]\t|###
  0.053 [3]\t|#########
  0.058 [1]\t|###


Latency distribution:
  10% in 0.0029 secs
  25% in 0.0069 secs
  50% in 0.0137 secs
  75% in 0.0250 secs
  90% in 0.0493 secs
  95% in 0.0498 secs
  0% in 0.0000 secs

Details (average, fastest, slowest):
  DNS+dialup:\t0.0000 secs, 0.0024 secs, 0.0584 secs
  DNS-lookup:\t0.0000 secs, 0.0000 secs, 0.0000 secs
  req write:\t0.0000 secs, 0.0000 secs, 0.0001 secs
  resp wait:\t0.0184 secs, 0.0023 secs, 0.0583 secs
  resp read:\t0.0000 secs, 0.0000 secs, 0.0001 secs

Status code distribution:
  [200]\t40 responses



"""
HEY_REFUSED = """
Summary:
  Total:\t0.0010 secs
  Slowest:\t0.0000 secs
  Fastest:\t0.0000 secs
  Average:\t NaN secs
  Requests/sec:\t19070.2491


Response time histogram:


Latency distribution:

Details (average, fastest, slowest):
  DNS+dialup:\t NaN secs, 0.0000 secs, 0.0000 secs
  DNS-lookup:\t NaN secs, 0.0000 secs, 0.0000 secs
  req write:\t NaN secs, 0.0000 secs, 0.0000 secs
  resp wait:\t NaN secs, 0.0000 secs, 0.0000 secs
  resp read:\t NaN secs, 0.0000 secs, 0.0000 secs

Status code distribution:

Error distribution:
  [20]\tGet "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused

"""  # hey counts failed requests in its requests/s


def test_the_multipart_body_is_the_tutorials_form_as_the_function_reads_it():
    body, content_type = multipart(JPEG)
    request = Request("POST", "/predict", b"", {"content-type": content_type}, body)
    assert image_bytes(request, Settings()) == JPEG


def test_the_kserve_v1_body_holds_the_image_as_the_function_reads_it():
    assert v1.parse(json.loads(kserve_v1(JPEG)), Settings()) == [JPEG]


def test_photos_are_deterministic_jpegs_with_a_photographs_entropy():
    first = photo(320, 240)
    assert photo(320, 240) == first
    assert photo(320, 240, seed=1) != first
    image = Image.open(io.BytesIO(first))
    assert (image.format, image.size, image.mode) == ("JPEG", (320, 240), "RGB")
    bits_per_pixel = len(first) * 8 / (320 * 240)
    assert 1.0 < bits_per_pixel < 4.0  # a flat test card would be a fraction of a bit


def test_wrk_report_is_read_with_its_errors():
    run = parse(WRK_ANSWERED, 2)
    assert run == {"concurrency": 2, "requests": 2252, "rps": 2047.77, "p50_ms": 0.55, "p99_ms": 7.6, "errors": 2252}


def test_a_run_with_no_answer_counts_every_connection_as_an_error():
    run = parse(WRK_SILENT, 8)
    assert (run["requests"], run["errors"], run["p50_ms"], run["p99_ms"]) == (0, 8, None, None)


def test_profile_leaves_idle_samples_out_and_scales_the_rest_to_the_cpu_time(tmp_path):
    root = "<module> (function/__main__.py:6);Runner.run (asyncio/runners.py:118)"
    worker = "run (function/inference_worker.py:83);infer (function/inference_worker.py:110)"
    (tmp_path / "raw.txt").write_text(
        f"{root};uv__io_poll (linux.c:1546);epoll_pwait (libc.so.6) 50\n"
        f"{root};_send (multiprocessing/connection.py:384);write (libc.so.6) 30\n"
        f"{worker};decode (function/imaging.py:72);load_rgb (function/imaging.py:30) 10\n"
        f"{worker};_forward (function/inference_worker.py:120);probabilities (function/inference.py:20) 40\n"
        f"{worker};Connection._recv (multiprocessing/connection.py:379) 70\n"
    )
    summary = summarize(parse_stacks(tmp_path / "raw.txt"), cpu_ms_per_request=1.6)
    assert (summary["busy_samples"], summary["idle_samples"]) == (80, 120)
    assert summary["work_ms_per_request"] == {"decode": 0.2, "forward": 0.8}
    assert summary["functions"][0] == ["probabilities (function/inference.py)", 0.8]
    assert ["_send (multiprocessing/connection.py) [write]", 0.6] in summary["functions"]
    assert dict(summary["modules"]) == {"function.inference": 0.8, "multiprocessing": 0.6, "function.imaging": 0.2}


def test_queue_proxy_runs_with_the_go_runtime_the_charts_cpu_limit_gives_it() -> None:
    assert [go_max_procs(limit) for limit in ("1", "500m", "2500m", 3, "")] == [1, 1, 2, 3, None]
    assert environment(8012, 8112, 8080)["GOMAXPROCS"] == "1"  # the chart's queueProxy.cpuLimit, "1"


def test_hey_report_is_read_in_wrks_terms():
    run = parse_hey(HEY_ANSWERED, 4)
    assert run == {"concurrency": 4, "requests": 40, "rps": 193.61, "p50_ms": 13.7, "p99_ms": None, "errors": 0}


def test_a_hey_run_whose_requests_all_failed_has_no_rate_and_every_request_an_error():
    run = parse_hey(HEY_REFUSED, 2)
    assert (run["requests"], run["rps"], run["errors"], run["p50_ms"]) == (20, 0.0, 20, None)


def test_a_hey_run_that_reported_nothing_counts_every_connection_as_an_error():
    run = parse_hey("", 32)
    assert (run["requests"], run["rps"], run["errors"]) == (0, 0.0, 32)


def test_the_report_names_the_cpu_model_and_falls_back_for_results_that_lack_it():
    result = json.loads(RESULTS.read_text())
    result["machine"].pop("cpu_model", None)  # results from before 2026-11-28 name only the architecture
    assert f"CPUs, {result['machine']['processor']}, load average" in report.tables(result)
    result["machine"].update(cpu_model="AMD EPYC 7B13", cpus=2)
    assert "2 CPUs, AMD EPYC 7B13, load average" in report.tables(result)


def test_the_targets_give_the_recorded_verdicts_and_fail_just_past_a_threshold():
    from bench import run

    result = json.loads(RESULTS.read_text())
    verdicts = {name: met for name, (_, met) in run.targets(result).items()}
    assert verdicts == {name: target["met"] for name, target in result["targets"].items()}
    single = next(r for r in result["servers"][1]["runs"] if r["concurrency"] == 8)
    single["x_best_peer"]["rps"] = 1.49
    result["servers"][0]["cold_start_s"] = 2 * result["import_seconds"] + 0.01
    missed = [name for name, (_, met) in run.targets(result).items() if not met]
    assert missed == ["single view, c=8 and 32: >= 1.5x the best peer", "cold start <= 2x import time"]


def test_each_run_is_compared_with_the_best_peer_at_its_concurrency_metric_by_metric():
    from bench import run

    ours = [{"runs": [{"concurrency": 8, "rps": 300.0, "p50_ms": 2.0, "p99_ms": 4.0}]}]
    peers = [
        {"runs": [{"concurrency": 8, "rps": 100.0, "p50_ms": 9.0, "p99_ms": 9.0}, {"concurrency": 1, "rps": 900.0}]},
        {"runs": [{"concurrency": 8, "rps": 200.0, "p50_ms": 1.0, "p99_ms": None}]},
    ]
    run.compare(ours, peers)
    assert ours[0]["runs"][0]["x_best_peer"] == {"rps": 1.5, "p50": 2.0, "p99": 0.44}  # p99: against the first
    assert run.median_ratio([{"x_direct": 0.9}, {"x_direct": None}, {"x_direct": 1.2}]) == 0.9
