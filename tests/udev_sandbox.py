"""Real udev on stackrig's rules, without changing this machine.

``udevadm test`` (systemd 252, Debian 12) reads rules only from the system folders, and it does
not only simulate: it chmods and chowns the device node, creates the links in /dev and writes
/run/udev. So each run happens in a private mount namespace (``unshare``): the rules folder to
test is bound over /etc/udev/rules.d, fresh tmpfs hide /dev and /run, and a sysfs tree built by
sysfs_tree.py may be bound over /sys. The system's own rules in /usr/lib/udev/rules.d still run
around ours, as they do on a real system (60-serial.rules before, 73-seat-late.rules after).
Nothing outside the namespace changes. Missing tools fail the test, naming the package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

APT_UDEV = "sudo apt-get install -y udev"
APT_UNSHARE = "sudo apt-get install -y util-linux mount"
SCRIPT = """
set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev
mount --bind "$1" /etc/udev/rules.d
if [ -n "$2" ]; then mount --bind "$2" /sys; fi
exec udevadm test --action="$4" "$3"
"""
_PROPERTY = re.compile(r"([A-Z_.][A-Z0-9_.]*)=(.*)")


def udevadm() -> str:
    found = shutil.which("udevadm") or next(
        (p for p in ("/usr/bin/udevadm", "/bin/udevadm", "/sbin/udevadm") if Path(p).exists()),
        None,
    )
    assert found, f"udevadm is missing: the udev rules are tested with real udev ({APT_UDEV})"
    return found


def udev_version() -> int:
    run = subprocess.run([udevadm(), "--version"], capture_output=True, text=True, check=True)
    return int(run.stdout.split()[0])


@dataclass(frozen=True)
class UdevRun:
    device: str
    output: str  # udevadm's log and the properties it printed, stdout and stderr together

    def diagnostics(self) -> list[str]:
        """What udev said about the rules in the tested folder: parse errors and warnings
        ('Invalid key', 'has no matching label', 'Unknown group', 'Failed to parse mode')."""
        return [
            line for line in self.output.splitlines()
            if re.match(r"(\S+: )?/etc/udev/rules\.d/\S+:\d+:? ", line)
            and re.search(r"nvalid|unknown|Unknown|fail|Fail|ignor|no matching|dropping", line)
        ]  # fmt: skip

    def read(self) -> list[str]:
        """The rules files udev read from the tested folder."""
        return re.findall(r"Reading rules file: /etc/udev/rules\.d/(\S+)", self.output)

    def applied(self, file: str) -> list[str]:
        """What ``file``'s rules set on the device: 'GROUP 20', 'MODE 0660', "LINK 'x'"."""
        pattern = rf"^\S+: /etc/udev/rules\.d/{re.escape(file)}:\d+ (.+)$"
        return re.findall(pattern, self.output, re.MULTILINE)

    @property
    def properties(self) -> dict[str, str]:
        """The device's properties after all rules ran (the block udevadm test ends with)."""
        tail = self.output.rsplit("some values may be different, or not available", 1)[-1]
        return {m[1]: m[2] for m in map(_PROPERTY.fullmatch, tail.splitlines()) if m}


def namespace() -> list[str]:
    """The start of a command line that runs the rest in a private mount namespace: as root,
    or as a user in a user namespace of its own (where the kernel allows one)."""
    unshare = shutil.which("unshare")
    assert unshare, f"unshare is missing: the udev tests run in a namespace ({APT_UNSHARE})"
    command = [unshare, "--mount", "--propagation", "private"]
    return command if os.geteuid() == 0 else [*command, "--map-root-user"]


def udevadm_test(
    device: str, rules: Path, sysfs: Path | None = None, action: str = "add"
) -> UdevRun:
    """``udevadm test --action=ACTION DEVICE`` with ``rules`` as /etc/udev/rules.d and,
    when given, ``sysfs`` as /sys; in a mount namespace of its own."""
    tool = udevadm()
    assert Path("/etc/udev/rules.d").is_dir(), f"/etc/udev/rules.d is missing ({APT_UDEV})"
    command = namespace()
    env = {**os.environ, "PATH": f"{Path(tool).parent}:{os.environ.get('PATH', '')}"}
    if sysfs is not None:
        env["SYSTEMD_DEVICE_VERIFY_SYSFS"] = "0"  # the tree is a plain folder, not sysfs
    run = subprocess.run(
        [*command, "sh", "-c", SCRIPT, "sh", str(rules), str(sysfs or ""), device, action],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "DEVPATH=" in output, (
        f"udevadm test {device} did not run (exit {run.returncode}). Without root it needs "
        "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
        f"24.04 kernel.apparmor_restrict_unprivileged_userns=0):\n{output[-3000:]}"
    )
    return UdevRun(device, output)
