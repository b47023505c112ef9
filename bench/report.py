"""The benchmark's Markdown tables and PNG chart, from the result `bench.run` writes."""

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter


def _x(value: float | None) -> str:
    return "" if value is None else f" ({value}x)"


def _cpu(run: dict) -> str:
    cpu = run.get("cpu_ms_per_request")
    return f"{cpu['process']} + {cpu['children']}" if cpu else ""


def _load_cells(run: dict) -> list[object]:
    """What wrk measured in one run: requests/s, p50 and p99 in ms, errors."""
    return [f"{run['rps']:.1f}", run["p50_ms"], run["p99_ms"], run["errors"]]


def _naive_cells(row: dict, run: dict) -> list[object]:
    return [row["naive_limit_rps"], run["x_naive"]]


def _markdown(columns: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table: the header, its rule, and one line per row."""
    return [
        f"| {' | '.join(columns)} |",
        f"| {' | '.join('---' for _ in columns)} |",
        *(f"| {' | '.join(str(cell) for cell in row)} |" for row in rows),
    ]


def peers_table(result: dict) -> list[str]:
    columns = ["server", "concurrency", "requests/s (x best peer)", "p50 ms (x)", "p99 ms (x)", "errors"]
    columns += ["CPU ms/request (process + children)", "cold start s", "peak MiB"]
    rows = []
    for server in result["servers"]:
        for run in server["runs"]:
            x = run.get("x_best_peer", {})
            rows.append(
                [
                    server["name"],
                    run["concurrency"],
                    f"{run['rps']:.1f}{_x(x.get('rps'))}",
                    f"{run['p50_ms']}{_x(x.get('p50'))}",
                    f"{run['p99_ms']}{_x(x.get('p99'))}",
                    run["errors"],
                    _cpu(run),
                    server["cold_start_s"],
                    server["peak_memory_mib"],
                ]
            )
    return _markdown(columns, rows)


def tutorial_table(result: dict) -> list[str]:
    columns = ["server (multipart /predict)", "concurrency", "requests/s", "p50 ms", "p99 ms", "errors", "peak MiB"]
    rows = [
        [server["name"], run["concurrency"], *_load_cells(run), server["peak_memory_mib"]]
        for server in result["tutorial"]
        for run in server["runs"]
    ]
    return _markdown(columns, rows)


def photos_table(result: dict) -> list[str]:
    columns = ["photo", "JPEG bytes", "body", "concurrency", "requests/s", "p50 ms", "p99 ms", "errors"]
    columns += ["naive limit/s", "x naive"]
    rows = [
        [row["size"], row["bytes"], run["encoding"], run["concurrency"], *_load_cells(run), *_naive_cells(row, run)]
        for row in result["photos"]
        for run in row["runs"]
    ]
    return _markdown(columns, rows)


def balance_lines(result: dict) -> list[str]:
    balance = result["balance"]
    rates = ", ".join(f"{r['rps']:.1f}" for r in balance["runs"])
    lines = [f"Balance at c=32 (flip-averaged): {rates} requests/s; spread {balance['spread'] * 100:.1f}%."]
    client = balance.get("pooled_client")
    if client and client["runs"]:
        runs = client["runs"]
        rates = ", ".join(f"{r['rps']:.1f} (its wrk pair: {r['direct_rps']:.1f})" for r in runs)
        shares = "; ".join(" / ".join(f"{x:.0%}" for x in r["worker_cpu_shares"]) for r in runs)
        cores = ", ".join(str(r["client_cores"]) for r in runs)
        wrk_cores = ", ".join(str(r["direct_client_cores"]) for r in runs)
        pairs = "; ".join(
            "{} + {} against {} + {}".format(*r["function_front_workers_ms"], *r["direct_front_workers_ms"])
            for r in runs
        )
        lines.append(
            f"A pooled client, hey (Go's net/http: 32 goroutines on one transport): {rates} requests/s; "
            f"median ratio {client['x_direct']}x wrk; the inference workers' shares of their CPU: {shares}; "
            f"hey itself took {cores} cores, wrk {wrk_cores}; the function's CPU per request (front + "
            f"workers, ms) under hey against its wrk pair: {pairs}."
        )
    elif client:
        lines.append(f"A pooled client: not run ({client['skipped']}).")
    pooled = balance["queue_proxy"]
    if pooled and pooled["runs"]:
        rates = ", ".join(
            f"{r['rps']:.1f} (p99 {r['p99_ms']} ms, {r['errors']} errors"
            + (f"; its direct pair: {r['direct_rps']:.1f})" if "direct_rps" in r else ")")
            for r in pooled["runs"]
        )
        cores = ", ".join(str(r["queue_proxy_cores"]) for r in pooled["runs"])
        lines.append(
            f"Through Knative's queue-proxy: {rates}; median ratio {pooled['x_direct']}x direct; "
            f"queue-proxy itself used {cores} cores (GOMAXPROCS {pooled.get('gomaxprocs') or 'unset'})."
        )
        shares = "; ".join(" / ".join(f"{x:.0%}" for x in r.get("worker_cpu_shares", [])) for r in pooled["runs"])
        if all("function_front_workers_ms" in r for r in pooled["runs"]):
            pairs = "; ".join(
                "{} + {} against {} + {}".format(*r["function_front_workers_ms"], *r["direct_front_workers_ms"])
                for r in pooled["runs"]
            )
            lines.append(
                f"Meanwhile the inference workers' shares of their CPU: {shares}; the function's CPU per "
                f"request (front + workers, ms) through queue-proxy against its paired direct run: {pairs}."
            )
        elif all("worker_cpu_shares" in r for r in pooled["runs"]):
            spent = ", ".join(str(r["function_cpu_ms_per_request"]) for r in pooled["runs"])
            lines.append(
                f"Meanwhile the inference workers' shares of their CPU: {shares}; the function's CPU per "
                f"request: {spent} ms (direct: {direct_cpu_ms(balance)} ms)."
            )
    else:
        why = pooled["skipped"] if pooled else "no `--queue-proxy PATH`"
        lines.append(f"Through Knative's queue-proxy: not run ({why}).")
    return lines


def direct_cpu_ms(balance: dict) -> float:
    """The function's CPU per request (front and workers) in the direct balance runs, their median."""
    return round(statistics.median(sum(r["cpu_ms_per_request"].values()) for r in balance["runs"]), 3)


def profile_lines(result: dict) -> list[str]:
    profile = result["profile"]
    run, front, worker, budget = profile["run"], profile["front"], profile["worker"], profile["budget"]
    work = worker["work_ms_per_request"]
    lines = [
        f"Latency at c=1 (flip-averaged): p50 {budget['p50_ms']} ms = decode + forward in-process "
        f"{budget['decode_forward_ms']} ms + the workers' CPU above it {budget['workers_above_decode_forward_ms']} ms "
        f"+ the front's CPU {budget['front_cpu_ms']} ms + waiting {budget['waiting_ms']} ms (CPU per request: "
        "means from /proc).",
        "",
        f"Under py-spy ({profile['rate_hz']} Hz; {run['rps']:.1f} requests/s, p50 {run['p50_ms']} ms): front "
        f"{front['cpu_ms_per_request']} ms CPU per request, worker {worker['cpu_ms_per_request']} ms (decode "
        f"{work['decode']}, forward {work['forward']}, the rest "
        f"{round(worker['cpu_ms_per_request'] - work['decode'] - work['forward'], 3)}); by module and function, "
        "ms per request:",
        "",
    ]
    rows = [
        [
            role,
            "<br>".join(f"{name} {ms}" for name, ms in summary["modules"]),
            "<br>".join(f"`{name}` {ms}" for name, ms in summary["functions"]),
        ]
        for role, summary in (("front", front), ("worker 0", worker))
    ]
    return lines + _markdown(["process", "top modules", "top functions (self; [native leaf])"], rows)


def latency_lines(result: dict) -> list[str]:
    """Each c=1 p50 of ours against the in-process decode + forward measured just before and after it."""
    parts = [
        f"{server['name']}: "
        + ", ".join(
            f"p50 {each['p50_ms']} ms against {each['request_ms_around'][0]} and {each['request_ms_around'][1]} ms "
            f"({each['x_request_ms']}x)"
            for each in run.get("repeats", [run])
        )
        + (f", median {run['x_request_ms']}x" if "repeats" in run else "")
        for server in result["servers"]
        for run in server["runs"]
        if "request_ms_around" in run
    ]
    if not parts:
        return []
    return [f"At c=1, against the in-process decode + forward measured around each run: {'; '.join(parts)}."]


def tables(result: dict) -> str:
    request = result["request_ms"]
    cpu = result["machine"].get("cpu_model", result["machine"]["processor"])  # results before 2026-11-28 lack it
    lines = [
        f"Peers: the same KServe v1 request ({result['request']['image']}, {result['request']['image_bytes']} bytes, "
        f"base64) to {result['request']['path']}; {result['seconds_per_point']} s per point.",
        "",
        *peers_table(result),
        "",
        *latency_lines(result),
        "",
        *tutorial_table(result),
        "",
        *photos_table(result),
        "",
        *balance_lines(result),
        "",
        *profile_lines(result),
        "",
        f"import mxnet+gluoncv: {result['import_seconds']} s; forward limit (batch 32, flip-averaged): "
        f"{result['forward_limit_images_per_s']} images/s; decode + forward of one image in-process: "
        f"{request['flip_averaged']} ms flip-averaged, {request['single_view']} ms single view "
        f"({request['single_view_after_1ms_sleep']} ms when each follows 1 ms asleep); "
        f"{result['machine']['cpus']} CPUs, {cpu}, load average at start "
        f"{result['machine']['load_average_at_start'][0]:.2f}, {result['date']}, {result['duration_s']} s in all",
        "",
    ]
    targets = [[name, t["value"], "yes" if t["met"] else "no"] for name, t in result["targets"].items()]
    return "\n".join(lines + _markdown(["target", "value", "met"], targets))


def chart(result: dict, path: Path) -> None:
    fig, (rps_ax, p99_ax, photo_ax) = plt.subplots(1, 3, figsize=(16, 4.5))
    servers = result["servers"]
    width = 0.8 / len(servers)
    levels = [str(r["concurrency"]) for r in servers[0]["runs"]]
    for index, server in enumerate(servers):
        positions = [i + (index - (len(servers) - 1) / 2) * width for i in range(len(levels))]
        rps_ax.bar(positions, [r["rps"] for r in server["runs"]], width, label=server["name"])
        p99_ax.bar(positions, [r["p99_ms"] or 0 for r in server["runs"]], width, label=server["name"])
    for ax, label in ((rps_ax, "requests/s"), (p99_ax, "p99 latency (ms)")):
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlabel("concurrent clients (KServe v1 request, 32 x 32 JPEG)")
        ax.set_ylabel(label)
    rps_ax.legend(fontsize=7)
    sizes = [row["size"] for row in result["photos"]]
    at = [{(r["encoding"], r["concurrency"]): r["rps"] for r in row["runs"]} for row in result["photos"]]
    series = [
        ("naive limit (Pillow, all cores)", [row["naive_limit_rps"] for row in result["photos"]]),
        *[(f"function, {encoding}, c=8", [rates[(encoding, 8)] for rates in at]) for encoding in ("raw", "multipart")],
    ]
    width = 0.8 / len(series)
    for index, (label, values) in enumerate(series):
        photo_ax.bar([i + (index - 1) * width for i in range(len(sizes))], values, width, label=label)
    photo_ax.set_xticks(range(len(sizes)), sizes)
    photo_ax.set_xlabel("photo-like JPEG")
    photo_ax.set_ylabel("requests/s")
    photo_ax.legend(fontsize=7)
    # Logarithmic where figures span decades: p99 from milliseconds to seconds, photos from VGA to 12 MP.
    for ax in (p99_ax, photo_ax):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    fig.suptitle("cifar10-function against KServe and MLServer (same weights, same preprocessing), and photos")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
