"""What the sandbox looks like: the spec of one sandboxed run, and the bwrap argv that builds it.

Pure apart from reading the host's layout (which system folders are links,
which /etc files are private, which GPU device nodes exist), so the argv can
be unit-tested with a fake layout.
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grader
from grader.errors import GraderError
from grader.sandbox.identity import Launch, device_groups, hand_over, sandbox_user
from grader.settings import RunLimits

_DEFAULT = RunLimits()

# uid/gid of the student process inside its own user namespace. Outside it is
# the uid bwrap was started as (bwrap maps the one inside uid to the caller's):
# the grader's own, or an unprivileged one where the grader is root
# (grader.sandbox.identity). Inside it has no capabilities, so it cannot mount,
# mknod or reach the host's devices.
SANDBOX_UID = 65534

# Where the `grader` package source appears inside, so `python -m grader...`
# works without exposing the checkout it lives in (/work, a home folder).
GRADER_SRC_INSIDE = Path("/opt/mnist-grader")

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Each sizes a thread pool by the host's cores unless told: OpenMP (torch's intra-op pool), MKL, OpenBLAS,
# numexpr, Accelerate, and TensorFlow's two pools (Keras notebooks on a TensorFlow backend). GRADER_CPUS is
# the budget itself, read by the kernel harness (torch's pools, DataLoader workers).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "GRADER_CPUS")
_PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")
_GPU_SHARED_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps")


@dataclass(frozen=True)
class SandboxSpec:
    """One sandboxed run: its scratch, what it sees, and its limits.

    The scratch is bound at the same path inside as on the host
    (`inside_scratch == scratch`), so paths into it (ZMQ IPC sockets, files
    the grader writes for the student and reads back) are identical on both
    sides and in trusted (`sandbox=False`) mode. The inside paths of
    `ro_binds` exist only in the sandbox; give inside == host where the same
    argv must also work in trusted mode.

    The limits default to grader.settings.RunLimits' (`for_run` maps a
    whole RunLimits record onto a spec). `max_processes` counts tasks
    (threads too, as the pids cgroup does) and includes bwrap's own two
    processes. `disk_bytes` and `disk_files` bound everything under the scratch together. `env` is the
    whole environment inside, on top of PATH, HOME (the scratch), LANG, TMPDIR, the thread counts of `cpus`
    (`THREAD_VARIABLES`) and PYTHONPATH (to which the grader source is appended).
    """

    scratch: Path
    ro_binds: tuple[tuple[Path, Path], ...] = ()
    wall_seconds: float = _DEFAULT.wall_seconds
    memory_bytes: int = _DEFAULT.memory_bytes
    max_processes: int = _DEFAULT.max_processes
    max_file_bytes: int = _DEFAULT.max_file_bytes
    disk_bytes: int = _DEFAULT.disk_bytes
    disk_files: int = _DEFAULT.disk_files
    max_output_bytes: int = 16 << 20  # what the grader keeps of the command's stdout + stderr
    shm_bytes: int = 512 << 20
    network: bool = False
    gpu: bool | None = None
    gpu_index: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # Cores the run may use: the thread pools' sizes inside (`inside_env`) and a CPU quota in the job's cgroup.
    # None: no budget (the libraries size their pools by the host's cores); `for_run` sets the run's.
    cpus: int | None = None
    # Whether the process may make user namespaces of its own: only for trusted code that sandboxes further
    # (the warm evaluator's zygote puts every child into its own namespaces); student code never gets it.
    nested_namespaces: bool = False

    def __post_init__(self) -> None:
        # Normalised once so that the inside path, the bind and the working
        # directory can never disagree.
        object.__setattr__(self, "scratch", Path(self.scratch).resolve())

    @property
    def inside_scratch(self) -> Path:
        return self.scratch

    @classmethod
    def for_run(cls, limits: RunLimits, *, scratch: Path, wall_seconds: float | None = None, **rest) -> SandboxSpec:
        """A spec with the limits of a grading run (`wall_seconds` overrides the run's, e.g. for the evaluation)."""
        return cls(scratch=scratch, wall_seconds=wall_seconds or limits.wall_seconds, memory_bytes=limits.memory_bytes,
                   max_processes=limits.max_processes, max_file_bytes=limits.max_file_bytes,
                   disk_bytes=limits.disk_bytes, disk_files=limits.disk_files, cpus=limits.cpus, **rest)


@dataclass(frozen=True)
class HostLayout:
    """The parts of the host that decide the argv; `HostLayout.detect()` reads the real one."""

    links: Mapping[str, str]  # system dir -> link target, for merged-/usr hosts
    dirs: tuple[str, ...]  # system dirs that exist as real folders
    python_roots: tuple[str, ...]  # interpreter prefixes and site-packages not under a system dir
    private_etc: tuple[tuple[str, bool], ...]  # (path, is_dir) that others cannot read
    gpu_nodes: tuple[str, ...]  # /dev/nvidia* to pass through
    grader_src: str  # the folder holding the `grader` package

    @staticmethod
    def detect() -> HostLayout:
        links = {d: os.readlink(d) for d in _SYSTEM_DIRS if os.path.islink(d)}
        dirs = tuple(d for d in _SYSTEM_DIRS if d not in links and os.path.isdir(d))
        return HostLayout(
            links=links,
            dirs=dirs,
            python_roots=_python_roots(dirs),
            private_etc=_private_under("/etc"),
            gpu_nodes=gpu_device_nodes(),
            grader_src=str(Path(grader.__file__).resolve().parent.parent),
        )


def bwrap_available() -> str | None:
    return shutil.which("bwrap")


def gpu_device_nodes(dev: Path = Path("/dev")) -> tuple[str, ...]:
    names = sorted(p.name for p in dev.glob("nvidia*"))
    gpus = sorted((n for n in names if n[len("nvidia"):].isdigit()), key=lambda n: int(n[len("nvidia"):]))
    shared = [n for n in _GPU_SHARED_NODES if n in names]
    return tuple(str(dev / n) for n in shared + gpus)


def inside_env(spec: SandboxSpec, *, sandbox: bool, layout: HostLayout | None = None) -> dict[str, str]:
    """The complete environment of the student process; nothing of the grader's own leaks in."""
    layout = layout or HostLayout.detect()
    grader_path = str(GRADER_SRC_INSIDE) if sandbox else layout.grader_src
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(spec.inside_scratch),
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        # HOME is the student's scratch: a .local/lib/.../site-packages there
        # must not be imported by later grader processes sharing that scratch.
        "PYTHONNOUSERSITE": "1",
    }
    if uses_gpu(spec, layout) and spec.gpu_index is not None:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # so the index means what nvidia-smi shows
        env["CUDA_VISIBLE_DEVICES"] = str(spec.gpu_index)
    if spec.cpus is not None:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(spec.cpus)))
    env.update(spec.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.env.get("PYTHONPATH"), grader_path) if p)
    return env


def uses_gpu(spec: SandboxSpec, layout: HostLayout) -> bool:
    return bool(layout.gpu_nodes) if spec.gpu is None else spec.gpu


def sandbox_command(argv: Sequence[str], spec: SandboxSpec, *, bwrap: str,
                    layout: HostLayout) -> tuple[list[str], Launch]:
    """The bwrap command line for `argv` and how to start it: as which host uid, with which sources staged
    (`Launch.after(limits_preexec)` is the child's preexec). The scratch is made and handed to that uid."""
    user = sandbox_user()
    launch = Launch(user, groups=device_groups(layout.gpu_nodes, user) if uses_gpu(spec, layout) else ())
    spec.scratch.mkdir(parents=True, exist_ok=True)
    command = build_argv(argv, spec, bwrap=bwrap, layout=layout, launch=launch)
    hand_over(spec.scratch, user)
    return command, launch


def build_argv(argv: Sequence[str], spec: SandboxSpec, *, bwrap: str = "bwrap", layout: HostLayout | None = None,
               launch: Launch | None = None) -> list[str]:
    """The bwrap command line that runs `argv` as described by `spec`.

    The environment is not in here: the caller starts bwrap with
    `inside_env(...)` as its whole environment (bwrap passes it through), which
    keeps the values out of the host's /proc/*/cmdline. `launch`: where bwrap
    finds each bound source when it runs as another uid (default: at its path).
    """
    layout = layout or HostLayout.detect()
    src = launch.source if launch is not None else str
    out = [bwrap, "--unshare-all"]
    if spec.network:
        out.append("--share-net")
    out += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    if not spec.nested_namespaces:
        out.append("--disable-userns")
    out += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    for d in layout.dirs:
        out += ["--ro-bind", src(d), d]
    for d, target in layout.links.items():
        out += ["--symlink", target, d]
    out += ["--ro-bind", src("/etc"), "/etc"]
    # Inside, the sandbox uid maps to the uid bwrap runs as (the grader's, or an
    # unprivileged one where the grader is root): whatever the host hides from
    # other users stays hidden even from a grader's own uid that owns it.
    for path, is_dir in layout.private_etc:
        out += ["--tmpfs", path] if is_dir else ["--ro-bind", "/dev/null", path]
    out += ["--proc", "/proc"]
    # Second line of defence (a root grader starts bwrap as an unprivileged uid, grader.sandbox.identity): were the
    # sandbox uid root's, the kernel would let it write sysctls and IRQ settings by their owner bits. bwrap makes
    # these read-only only where the folder
    # itself is writable, which /proc/sys (0555) is not: bound read-only here, kernel.core_pattern (a path the
    # kernel runs as root on a crash) and vm.drop_caches among them stay out of reach.
    # (Not for a zygote: trusted, it lets each child write its own user.max_user_namespaces before that child covers
    # /proc and drops every capability; see grader.sandbox.nested.)
    for entry in _PROC_READ_ONLY if not spec.nested_namespaces else ():
        if os.path.exists(f"/proc/{entry}"):
            out += ["--ro-bind", f"/proc/{entry}", f"/proc/{entry}"]
    out += ["--dev", "/dev"]
    out += ["--size", str(spec.shm_bytes), "--tmpfs", "/dev/shm"]
    if uses_gpu(spec, layout):
        if not layout.gpu_nodes:
            raise GraderError("a GPU was asked for but no /dev/nvidia* device nodes exist",
                              fix="run with gpu=None (auto) or on a host with the NVIDIA driver loaded")
        for node in layout.gpu_nodes:
            out += ["--dev-bind", node, node]
    # /tmp is RAM: without a size it is a way around the memory limit where
    # only rlimits are available. The fresh mounts (/proc, /dev, /dev/shm,
    # /tmp) come before every bind that may lie under them (a venv in /tmp,
    # the scratch, staged data), which they would otherwise hide.
    out += ["--size", str(spec.memory_bytes), "--tmpfs", "/tmp"]
    for root in layout.python_roots:
        out += ["--ro-bind", src(root), root]
    out += ["--ro-bind", src(str(Path(layout.grader_src) / "grader")), str(GRADER_SRC_INSIDE / "grader")]
    scratch = str(spec.inside_scratch)
    out += ["--bind", src(scratch), scratch]
    # After the scratch: a read-only bind inside it (./data) must lie on top of it, not under it.
    for host, inside in spec.ro_binds:
        if not Path(host).exists():
            raise GraderError(f"{host} does not exist, so it cannot be shown read-only at {inside} in the sandbox",
                              fix="stage it first, or leave it out of ro_binds")
        out += ["--ro-bind", src(str(Path(host).resolve())), str(inside)]
    # A program outside what is shown would fail inside with bwrap's bare "execvp ...: No such file or directory".
    shown = (*layout.dirs, *layout.links, "/etc", *layout.python_roots, str(GRADER_SRC_INSIDE), scratch,
             *(str(inside) for _, inside in spec.ro_binds))
    if argv and (hidden := _hidden_hop(argv[0], shown)):
        through = "" if hidden == argv[0] else f" (where {argv[0]} leads through symbolic links)"
        raise GraderError(f"{argv[0]} cannot run in the sandbox: {hidden}{through} is not shown inside, which has "
                          f"only the system folders, /etc, the grader's own interpreter "
                          f"({', '.join(layout.python_roots) or 'in the system folders'}), the scratch and the "
                          "staged data",
                          where=argv[0],
                          fix="run the grader itself with the Python the sandbox should use (its venv or prefix is "
                              "then shown read-only), or use a Python installed under /usr")
    out += ["--chdir", scratch]
    # The root is bwrap's own tmpfs: writable (mount points, stray files)
    # until remounted; the binds keep their own flags.
    out += ["--remount-ro", "/", "--", *argv]
    return out


def _python_roots(system_dirs: Sequence[str]) -> tuple[str, ...]:
    """The interpreter's prefixes (a venv and the base it links into) and site-packages, minus what is already bound."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    # Bound at the path the interpreter knows them by (a venv's python links
    # into its base prefix through that path).
    paths = sorted({os.path.abspath(p) for p in candidates if os.path.isdir(p)}, key=len)
    roots: list[str] = []
    for p in paths:
        # A prefix that holds a system dir ("/") is served by those dirs; bound whole, it would
        # show the host's every file and cover /proc, /dev and /tmp, which are mounted before it.
        if not any(_under(p, r) or _under(r, p) for r in (*system_dirs, *roots)):
            roots.append(p)
    return tuple(roots)


def _hidden_hop(program: str, shown: Sequence[str]) -> str | None:
    """The first path on the way from an absolute `program` through its symbolic links that lies outside `shown`.

    None when every step is shown, or when `program` is a bare name (looked up on PATH inside).
    """
    path, seen = program, set()
    while os.path.isabs(path) and path not in seen:
        if not any(_under(path, root) for root in shown):
            return path
        seen.add(path)
        if not os.path.islink(path):
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return None


def _private_under(top: str) -> tuple[tuple[str, bool], ...]:
    """Entries under `top` that other users cannot read (files) or enter (folders)."""
    found: list[tuple[str, bool]] = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in list(dirnames):
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
                found.append((path, True))
                dirnames.remove(name)
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode) and not mode & stat.S_IROTH:
                found.append((path, False))
    return tuple(sorted(found))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
