"""The bwrap argv and the inside environment, built against a fake host layout (no bwrap, no GPU needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import grader.sandbox.run
from grader.errors import GraderError
from grader.sandbox import SandboxSpec, run_sandboxed
from grader.sandbox.bwrap import GRADER_SRC_INSIDE, HostLayout, build_argv, gpu_device_nodes, inside_env

LAYOUT = HostLayout(
    links={"/bin": "usr/bin", "/lib": "usr/lib"},
    dirs=("/usr",),
    python_roots=("/home/grader/.pyenv/versions/3.11.7",),
    private_etc=(("/etc/shadow", False), ("/etc/ssl/private", True)),
    gpu_nodes=(),
    grader_src="/home/grader/checkout",
)
GPU_LAYOUT = HostLayout(**{**LAYOUT.__dict__,
                           "gpu_nodes": ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1")})


def argv_for(spec: SandboxSpec, layout: HostLayout = LAYOUT) -> list[str]:
    return build_argv(["python", "run.py"], spec, layout=layout)


def triples(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == option]


def test_isolates_every_namespace_and_runs_unprivileged(tmp_path: Path) -> None:
    argv = argv_for(SandboxSpec(scratch=tmp_path))
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--uid") + 1] == argv[argv.index("--gid") + 1] == "65534"
    assert argv[-5:] == ["--remount-ro", "/", "--", "python", "run.py"]


def test_network_is_opt_in(tmp_path: Path) -> None:
    assert "--share-net" in argv_for(SandboxSpec(scratch=tmp_path, network=True))


def test_binds_the_system_and_interpreter_read_only_never_root_or_home(tmp_path: Path) -> None:
    argv = argv_for(SandboxSpec(scratch=tmp_path, ro_binds=((tmp_path, Path("/data")),)))
    ro = triples(argv, "--ro-bind")
    assert ("/usr", "/usr") in ro and ("/etc", "/etc") in ro
    assert ("/home/grader/.pyenv/versions/3.11.7",) * 2 in ro
    assert ("/home/grader/checkout/grader", str(GRADER_SRC_INSIDE / "grader")) in ro
    assert (str(tmp_path), "/data") in ro
    assert triples(argv, "--symlink") == [("usr/bin", "/bin"), ("usr/lib", "/lib")]
    sources = {src for src, _ in ro + triples(argv, "--bind")}
    assert not sources & {"/", "/home", "/home/grader", "/home/grader/checkout"}


def test_hides_what_etc_keeps_private(tmp_path: Path) -> None:
    argv = argv_for(SandboxSpec(scratch=tmp_path))
    assert ("/dev/null", "/etc/shadow") in triples(argv, "--ro-bind")
    assert argv[argv.index("/etc/ssl/private") - 1] == "--tmpfs"


def test_scratch_is_the_writable_working_directory_at_the_same_path(tmp_path: Path) -> None:
    spec = SandboxSpec(scratch=tmp_path / "job" / ".." / "job")
    argv = argv_for(spec)
    inside = str(tmp_path / "job")
    assert spec.inside_scratch == Path(inside)
    assert triples(argv, "--bind") == [(inside, inside)]
    assert argv[argv.index("--chdir") + 1] == inside
    # A scratch under /tmp must be bound after the private /tmp is mounted, or the tmpfs hides it.
    assert argv.index("/tmp") < argv.index("--bind")


def test_dev_shm_and_tmp_are_sized_tmpfs(tmp_path: Path) -> None:
    argv = argv_for(SandboxSpec(scratch=tmp_path, shm_bytes=1234, memory_bytes=5678))
    assert argv[argv.index("/dev/shm") - 3 :][:3] == ["--size", "1234", "--tmpfs"]
    assert argv[argv.index("/tmp") - 3 :][:3] == ["--size", "5678", "--tmpfs"]
    assert argv.index("--dev") < argv.index("/dev/shm")


def test_gpu_nodes_are_found_in_a_fake_dev(tmp_path: Path) -> None:
    for name in ("nvidia10", "nvidia1", "nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "null"):
        (tmp_path / name).touch()
    found = [Path(p).name for p in gpu_device_nodes(tmp_path)]
    assert found == ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidia10"]


def test_gpu_nodes_are_passed_after_dev_with_the_chosen_index(tmp_path: Path) -> None:
    spec = SandboxSpec(scratch=tmp_path, gpu_index=1)
    argv = argv_for(spec, GPU_LAYOUT)
    bound = triples(argv, "--dev-bind")
    assert bound == [(n, n) for n in GPU_LAYOUT.gpu_nodes]
    assert argv.index("--dev") < argv.index("--dev-bind")
    assert inside_env(spec, sandbox=True, layout=GPU_LAYOUT)["CUDA_VISIBLE_DEVICES"] == "1"


def test_gpu_can_be_refused_or_demanded(tmp_path: Path) -> None:
    assert "--dev-bind" not in argv_for(SandboxSpec(scratch=tmp_path, gpu=False), GPU_LAYOUT)
    assert "CUDA_VISIBLE_DEVICES" not in inside_env(SandboxSpec(scratch=tmp_path, gpu=False, gpu_index=0), sandbox=True,
                                                    layout=GPU_LAYOUT)
    with pytest.raises(GraderError, match="no /dev/nvidia"):
        argv_for(SandboxSpec(scratch=tmp_path, gpu=True))


def test_inside_environment_is_only_what_we_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_GRADER_TEST_SECRET", "hunter2")
    spec = SandboxSpec(scratch=tmp_path, env={"OMP_NUM_THREADS": "2", "LANG": "en_US.UTF-8", "PYTHONPATH": "/extra"})
    env = inside_env(spec, sandbox=True, layout=LAYOUT)
    assert set(env) == {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONNOUSERSITE", "PYTHONPATH", "OMP_NUM_THREADS"}
    assert env["HOME"] == str(tmp_path) and env["LANG"] == "en_US.UTF-8"
    assert env["PYTHONPATH"] == f"/extra:{GRADER_SRC_INSIDE}"
    assert env["PATH"].startswith(str(Path(sys.executable).parent))
    assert inside_env(spec, sandbox=False, layout=LAYOUT)["PYTHONPATH"] == "/extra:/home/grader/checkout"


def test_missing_bwrap_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grader.sandbox.run, "bwrap_available", lambda: None)
    with pytest.raises(GraderError, match="apt-get install -y bubblewrap") as raised:
        run_sandboxed(["true"], SandboxSpec(scratch=tmp_path))
    assert "--no-sandbox" in str(raised.value)


def test_real_layout_binds_the_interpreter_and_not_its_owners_home() -> None:
    layout = HostLayout.detect()
    covered = [*layout.dirs, *layout.python_roots]
    assert any(sys.base_prefix == r or sys.base_prefix.startswith(r + "/") for r in covered)
    assert str(Path.home()) not in covered


def test_a_missing_read_only_bind_is_named(tmp_path: Path) -> None:
    with pytest.raises(GraderError, match="mnist-staged does not exist"):
        argv_for(SandboxSpec(scratch=tmp_path, ro_binds=((tmp_path / "mnist-staged", Path("/data")),)))
