"""The warm evaluator's zygote: runs in bubblewrap with torch imported and warm, forks one child per submission.

    python -m grader.evaluate.zygote FD IMAGES [UNSEEN_IMAGES]

FD is one end of a SOCK_SEQPACKET socket pair whose other end the host (grader.evaluate.warm) keeps. Each message
is a job (grader.evaluate.eval_jobs.WarmJob as JSON: the evaluation and the child's limits, validated here) with
four descriptors: the exported model (read-only), the pipe the result goes to, the pipe for the child's output, and
the child's control socket.

Per job, the zygote forks a child that stays trusted: it says "ready" on its control socket (the host reads its
PID from the socket's credentials and moves it into the job's own cgroup), waits for "go", enters namespaces of
its own (grader.sandbox.nested) and forks the process that measures: PID 1 of a new PID namespace, with every
inherited mount read-only and /tmp, /dev/shm and /proc fresh. It reads the model from its descriptor, predicts
the test images the zygote loaded once (copy-on-write: its writes stay its own), writes the result to its pipe and
exits. The trusted child reports how it ended. The zygote runs no submission code and reads nothing a child
writes, so no child can change the zygote or another child.

Result pipe: 8 bytes of header length, the JSON header (EvalRecord's fields, or {"error": ...}), then the
predictions and the unseen predictions as .npy bytes, their lengths given in the header.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import socket
import struct
import sys
import traceback
from dataclasses import asdict

from grader.evaluate.clean import measure
from grader.evaluate.eval_jobs import EvalJob, WarmJob
from grader.sandbox import nested

_MAX_JOB_BYTES = 1 << 16


def warm_up() -> None:
    """Everything the first submission would otherwise pay for: torch's operators, torch.export's loader, the
    graph readers. Run on one thread, so no OpenMP pool exists when the zygote forks (a child starts its own)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 10, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

        def forward(self, x):
            return torch.nn.functional.log_softmax(self.body(x), dim=1)

    model = Tiny().eval()
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch")
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), buffer)
    images = np.zeros((8, 28, 28), dtype=np.uint8)
    measure(EvalJob(model_file="", images_file="", out_dir="", scale=1.0, shift=0.0),
            images=images, model_bytes=buffer.getvalue())
    try:  # the torchvision steps a notebook's transform may name (grader.data.transforms)
        import torchvision.transforms  # noqa: F401
    except ImportError:
        pass


def serve(sock: socket.socket, images, unseen) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel; their parent never waits
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, _MAX_JOB_BYTES, 4)
        except InterruptedError:
            continue
        if not message:  # the host closed its end
            return
        try:
            if len(fds) != 4:
                raise ValueError(f"a job comes with 4 descriptors, got {len(fds)}")
            job = WarmJob.model_validate_json(message)
            pid = os.fork()
            if pid == 0:
                try:
                    _trusted_child(sock, job, fds, images, unseen)
                except BaseException:  # noqa: BLE001 - the grader's own failure: into the zygote's log
                    traceback.print_exc()
                finally:
                    os._exit(70)
        except Exception:  # the host's message, not a submission: say it and go on serving
            traceback.print_exc()
        finally:
            for fd in fds:
                os.close(fd)


def _trusted_child(sock: socket.socket, job: WarmJob, fds: list[int], images, unseen) -> None:
    """Between the zygote and the submission: hands its PID to the host, makes the namespaces, waits for the end,
    and reports how the set-up went (told by its child before any untrusted code ran) and how the child ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock.close()
    model_fd, result_fd, log_fd, control_fd = fds
    control = socket.socket(fileno=control_fd)
    control.send(b"ready")  # the host reads this process's PID from the credentials and adopts it into a cgroup
    if control.recv(16) != b"go":
        os._exit(0)
    try:
        nested.enter_namespaces()
    except OSError as exc:
        control.send(json.dumps({"exit": None, "setup": f"making the namespaces: {exc}"}).encode())
        os._exit(0)
    told, tell = os.pipe()
    pid = os.fork()
    if pid == 0:
        control.close()
        os.close(told)
        try:
            _measure_child(job, model_fd, result_fd, log_fd, tell, images, unseen)
        finally:
            os._exit(71)
    for fd in (model_fd, result_fd, log_fd, tell):
        os.close(fd)
    setup = b""
    while len(setup) < 4096:  # "ok", or why the set-up failed; nothing if it died first
        chunk = os.read(told, 4096)
        if not chunk:
            break
        setup += chunk
    os.close(told)
    _, status = os.waitpid(pid, 0)
    control.send(json.dumps({"exit": os.waitstatus_to_exitcode(status),
                             "setup": setup.decode("utf-8", "replace") or "the child died in its set-up"}).encode())
    os._exit(0)


def _set_up(job: WarmJob, model_fd: int, result_fd: int, log_fd: int, tell: int) -> None:
    """Output to its own pipe, no descriptor but its own, its own mounts, no capabilities, its limits."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = sys.stdout
    keep = {0, 1, 2, model_fd, result_fd, tell}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    nested.isolate(job.tmp_bytes)
    os.chdir("/tmp")  # the only writable folder: its own
    os.setsid()
    nested.prctl(nested.PR_SET_PDEATHSIG, signal.SIGKILL)  # its trusted parent killed: it goes too
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if job.file_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (job.file_bytes, job.file_bytes))
    if job.rlimit_memory:  # no cgroup on this host: the memory limit is the address space
        resource.setrlimit(resource.RLIMIT_AS, (job.rlimit_memory, job.rlimit_memory))
    if job.cpu_seconds:  # a clock its parent's death cannot stop: CPU time, counted by the kernel
        resource.setrlimit(resource.RLIMIT_CPU, (job.cpu_seconds, job.cpu_seconds + 5))


def _measure_child(job: WarmJob, model_fd: int, result_fd: int, log_fd: int, tell: int, images, unseen) -> None:
    """PID 1 of its own namespaces: the only process that touches the submission's model. It tells its trusted
    parent on `tell` whether its set-up worked, and closes that pipe, before it reads the model."""
    try:
        _set_up(job, model_fd, result_fd, log_fd, tell)
    except Exception as exc:  # the grader's set-up, not the submission: the host measures it another way
        os.write(tell, f"{exc.__class__.__name__}: {exc}".encode()[:4000])
        os._exit(72)
    os.write(tell, b"ok")
    os.close(tell)
    import torch

    torch.set_num_threads(max(1, job.cpus))
    with os.fdopen(model_fd, "rb") as f:
        model_bytes = f.read()
    with os.fdopen(result_fd, "wb") as out:
        if job.script is not None:
            _write(out, {"script_exit": _run_script(model_bytes, job.script)}, [])
            os._exit(0)
        try:
            assert job.measure is not None, "a warm job without a script measures a model (WarmJob._one_task)"
            measured = measure(job.measure, images=images,
                               unseen_images=unseen if job.measure.unseen_images_file else None,
                               model_bytes=model_bytes)
        except Exception as exc:
            _write(out, {"error": f"{exc.__class__.__name__}: {exc}"}, [])
            return
        arrays = [a for a in (measured.predictions, measured.unseen_predictions) if a is not None]
        _write(out, {"record": asdict(measured.record), "arrays": len(arrays)}, arrays)
    os._exit(0)


def _run_script(source: bytes, argv: list[str]) -> int:
    """Run Python source as __main__ where a model would be measured: how the tests show what a child can reach.

    Only the host sends jobs, so this is no way in for a submission; it lets the adversarial fixtures run with exactly
    the isolation a model gets."""
    sys.argv = ["script.py", *argv]
    try:
        exec(compile(source, "script.py", "exec"), {"__name__": "__main__"})
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - its traceback is its output
        traceback.print_exc()
        return 1
    return 0


def _write(out, header: dict, arrays: list) -> None:
    import numpy as np

    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        blobs.append(buffer.getvalue())
    header["sizes"] = [len(b) for b in blobs]
    head = json.dumps(header).encode()
    out.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    out.flush()


def main(argv: list[str]) -> int:
    import numpy as np

    nested.prctl(nested.PR_SET_DUMPABLE, 0)  # no process may read or write this one's memory through /proc
    sock = socket.socket(fileno=int(argv[0]))
    images = np.load(argv[1])
    unseen = np.load(argv[2]) if len(argv) > 2 else None
    warm_up()
    sock.send(b"warm")
    serve(sock, images, unseen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
