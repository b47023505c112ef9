"""tools/image_test.py's log check, on lines the real servers print."""

from tools.image_test import error_lines


def test_error_lines_flags_errors_and_tracebacks_only() -> None:
    logs = "\n".join(
        [
            "[2026-11-25 10:00:00 +0000] [1] [ERROR] Control server error: [Errno 30] Read-only file system: '/home'",
            "2026-11-27 07:18:56,073 ERROR function.model: model load failed: x.params: OSError: libcuda.so.1",
            "Traceback (most recent call last):",
            "2026-11-27 07:22:15,479 INFO function.model: model cifar_resnet20_v1 loaded on cpu(0) in 3.92 s",
            'INFO:     127.0.0.1:5000 - "POST / HTTP/1.1" 400 Bad Request (an error answered, not an error logged)',
            "[2026-11-25 10:00:01 +0000] [1] [INFO] Handling signal: term",
        ]
    )
    assert error_lines(logs) == logs.splitlines()[:3]
