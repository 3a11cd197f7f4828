"""Holds one job's scratch file system: a tmpfs mounted over the scratch folder in a mount namespace of its own.

Run as a script by grader.sandbox.scratchfs (`python -I -S scratch_keeper.py FOLDER OPTIONS USERNS`), so it
imports nothing but the standard library and starts in milliseconds. It makes a new mount namespace (and, for a
grader that is not root, a user namespace mapping only the grader's own uid and gid, in which it may mount),
mounts the tmpfs with OPTIONS (size=, nr_inodes=, mode=, uid=, gid=) on FOLDER, prints `ready` (or
`error: ...`), and waits until its standard input closes. While it waits, the grader starts the sandbox inside
these namespaces and reads the tmpfs through /proc/<this pid>/root; when the grader closes the pipe or dies, it
exits, and the tmpfs goes with the last process in the namespace.
"""

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID = 2
MS_NODEV = 4
MS_REC = 16384
MS_PRIVATE = 1 << 18


def main(folder: str, options: str, userns: bool) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    try:
        check(libc.unshare(CLONE_NEWNS | (CLONE_NEWUSER if userns else 0)),
              "unshare(CLONE_NEWNS" + (" | CLONE_NEWUSER)" if userns else ")"))
        if userns:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making the mounts private")
        check(libc.mount(b"scratch", folder.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()),
              f"mounting a tmpfs ({options}) on {folder}")
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", flush=True)
        return 1
    print("ready", flush=True)
    sys.stdin.buffer.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] == "1"))
