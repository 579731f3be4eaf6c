"""``NetworkNamespace``: a TLS-only ``redis-server`` in a network namespace of its own, reached
over a veth pair, so a test can cut the network between the client and Redis with iptables.

Owns the namespace (named ``secure_redis-<pid>-<n>``), the /30 its veth pair is addressed
from, the server certificate naming the namespace's address, the partition (``drop_inbound``
and ``heal``), what the kernel still holds for the server (``sockets_to_server``), the probe
``namespaces_available`` and the cleanup.

Invariants a reader must not break:

- Everything is torn down by ``stop()`` (and so by the ``with`` statement), whatever happened
  before: iptables rules, the redis-server process, the namespace and both veth ends, each
  step attempted even when an earlier one failed. ``start()`` cleans up after itself when it
  fails half-way, since ``__exit__`` never runs for a failed ``__enter__``.
- A test process that dies without cleaning up (SIGKILL) leaves no running server: it is
  started with a parent-death signal. Its namespace is removed by the next ``start()`` in
  any process (``_sweep_stale``), only once its owner pid is gone and nothing runs inside.
- Traffic goes only to the namespace: the /30 is point-to-point between the two veth ends,
  nothing is forwarded or translated, and the /30 is chosen so that it overlaps no address
  or route the machine already has.
- Every command is bounded in time (``_COMMAND_TIMEOUT``), and the password only ever
  travels in the server's config file, never on a command line.

Needs root (CAP_NET_ADMIN) and ``ip`` (iproute2, also for ``ss``), ``iptables`` and
``setpriv`` (util-linux).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .pki import TestPKI, issue_certificate
from .server import RedisServer, _StartStop

__all__ = ["NetworkNamespace", "SocketView", "namespaces_available"]

# Long enough for a loaded machine, short enough that a wedged command fails the test instead
# of hanging it.
_COMMAND_TIMEOUT = 10.0
# How long the host end of the veth pair may outlive its deleted namespace.
_LINK_GONE_WITHIN = 5.0
# iptables takes a lock shared by every namespace; wait for it instead of failing at once.
_IPTABLES = ("iptables", "-w", "5")
_PREFIX = "secure_redis-"
_OURS = re.compile(rf"^{re.escape(_PREFIX)}(\d+)-(\S+)")
# The RFC 1918 ranges; each instance draws a /30 at random and keeps it only if it overlaps
# nothing the machine has, so parallel runs and local networks (Docker, VPNs) are left alone.
_POOLS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_SUBNET_DRAWS = 64
_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "anycast", "blackhole",
                "unreachable", "prohibit", "throw", "nat"}
_instances = itertools.count()


def _run(args: Iterable[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One bounded command; a failure raises with the command and what it printed."""
    argv = list(args)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done


def _require_tools() -> None:
    """A missing tool is a broken machine, not a reason to skip: it fails, saying what to install."""
    wanted = {"ip": "iproute2", "ss": "iproute2", "iptables": "iptables", "setpriv": "util-linux"}
    missing = sorted({package for tool, package in wanted.items() if shutil.which(tool) is None})
    if missing:
        raise RuntimeError(f"network namespace tests need: apt-get install {' '.join(missing)}")


@functools.lru_cache(maxsize=1)
def namespaces_available() -> str | None:
    """None when this process may make network namespaces, veth pairs and iptables rules in
    them; otherwise why the kernel or our permissions refuse (the only reason to skip a test).
    Probes once per process, by doing exactly that and undoing it."""
    _require_tools()
    name = f"{_PREFIX}{os.getpid()}-probe"
    steps = [
        ("ip netns add", ["ip", "netns", "add", name]),
        ("a veth pair", ["ip", "link", "add", f"sr{os.getpid()}pa", "type", "veth",
                         "peer", "name", f"sr{os.getpid()}pb", "netns", name]),
        ("iptables in the namespace", ["ip", "netns", "exec", name, *_IPTABLES, "-L", "INPUT", "-n"]),
    ]
    try:
        for what, command in steps:
            done = _run(command, check=False)
            if done.returncode != 0:
                return f"the kernel or our permissions refuse network namespaces ({what}: {done.stderr.strip()[:200]})"
        return None
    finally:
        # Deleting the namespace deletes the veth peer inside it, and with it the pair.
        _run(["ip", "netns", "del", name], check=False)
        _run(["ip", "link", "del", f"sr{os.getpid()}pa"], check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale() -> None:
    """Removes namespaces left by test processes that died without cleaning up, once their
    owner is gone and nothing runs inside (a server there would have died with its owner)."""
    for line in _run(["ip", "netns", "list"]).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _OURS.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        if _run(["ip", "netns", "pids", name], check=False).stdout.strip():
            continue
        _run(["ip", "netns", "del", name], check=False)


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine has an address in or a route to (default routes aside:
    they overlap everything and are never more specific than a /30)."""
    taken: list[ipaddress.IPv4Network] = []
    for line in _run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        for found in re.findall(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", line):
            taken.append(ipaddress.IPv4Interface(found).network)
    for line in _run(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines():
        tokens = line.split()
        if tokens and tokens[0] in _ROUTE_TYPES:
            tokens = tokens[1:]
        if not tokens or tokens[0] == "default":
            continue
        try:
            taken.append(ipaddress.IPv4Network(tokens[0], strict=False))
        except ValueError:
            continue
    return taken


def _pick_subnet() -> ipaddress.IPv4Network:
    draw = random.SystemRandom()
    taken = _taken_networks()
    for _ in range(_SUBNET_DRAWS):
        pool = draw.choice(_POOLS)
        first = int(pool.network_address) + 4 * draw.randrange(pool.num_addresses // 4)
        subnet = ipaddress.IPv4Network((first, 30))
        if not any(subnet.overlaps(network) for network in taken):
            return subnet
    raise RuntimeError(f"no free /30 in the private ranges after {_SUBNET_DRAWS} draws")


# ss prints a timer's time left as [<m>min][<s>sec | <s>.]<ms>ms: "240ms", "3.172ms" (3.172 s),
# "6sec", "12sec", "1min3sec", and nothing at all for a timer firing now: "on,,3"
# (iproute2 misc/ss.c, print_ms_timer).
_TIME_LEFT = re.compile(r"^(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?$")


def _seconds_left(text: str) -> float:
    match = _TIME_LEFT.match(text)
    if match is None:  # a format we do not know must not read as "nothing pending"
        raise RuntimeError(f"ss printed a timer this harness cannot read: {text!r}")
    minutes, seconds, millis = (int(part or 0) for part in match.groups())
    return minutes * 60 + seconds + millis / 1000


@dataclass(frozen=True)
class SocketView:
    """One TCP socket of this machine toward the server, as ``ss`` shows it: ``unacknowledged``
    is its Send-Q (bytes queued or sent that the server has not acknowledged), ``timer`` the
    kernel's timer on it (``on,3.172ms,4``: the 5th retransmission is due in 3.172 s), if any."""

    state: str
    unacknowledged: int
    local: str
    timer: str | None

    @property
    def holds_data(self) -> bool:
        """Whether bytes for the server are still queued or unacknowledged here (a SYN-SENT
        socket's Send-Q of 1 is its SYN, not data)."""
        return self.unacknowledged > 0 and self.state != "SYN-SENT"

    @property
    def retransmit_in(self) -> float | None:
        """Seconds until the kernel retransmits this socket's unacknowledged data, or None when
        it holds none."""
        if not self.holds_data or not self.timer:
            return None
        kind, _, rest = self.timer.partition(",")
        return _seconds_left(rest.split(",")[0]) if kind == "on" else None


class _NamespacedRedisServer(RedisServer):
    """A ``RedisServer`` whose process runs inside the namespace ``namespace``."""

    def __init__(self, folder: Path, *, namespace: str, **options: object) -> None:
        super().__init__(folder, **options)  # type: ignore[arg-type]
        self.namespace = namespace

    def _command(self, config: Path) -> list[str]:
        # `ip netns exec` and setpriv both exec (no fork), so the pid we hold is redis-server's.
        # The parent-death signal kills the server if the test process dies without stopping
        # it; it fires when the thread that started it ends, which is pytest's main thread.
        return ["ip", "netns", "exec", self.namespace, "setpriv", "--pdeathsig", "KILL",
                *super()._command(config)]


class NetworkNamespace(_StartStop):
    """A TLS-only, password-protected ``redis-server`` alone in a network namespace.

    The machine reaches it at ``address`` over a veth pair (``url`` is the ``rediss://`` URL);
    its certificate is issued by ``pki``'s CA for that IP address. ``drop_inbound()`` drops
    every packet entering the namespace (``iptables -A INPUT -j DROP`` inside it), so requests
    and retransmissions from the client vanish while established sockets stay open on both
    sides; ``heal()`` deletes those rules. Use it in a ``with`` statement or a fixture that
    calls ``stop()``.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        pki: TestPKI,
        *,
        password: str,
        port: int = 6379,
        extra_config: Iterable[str] = (),
    ) -> None:
        self.folder = Path(folder)
        self.pki = pki
        self.password = password
        # A namespace of its own has every port free, so a fixed one is never taken.
        self.port = port
        self.extra_config = list(extra_config)
        instance = next(_instances)
        self.name = f"{_PREFIX}{os.getpid()}-{instance}"
        # Interface names are limited to 15 characters: "sr" + pid (at most 7 digits) + n + h/n.
        self.host_link = f"sr{os.getpid()}{instance}h"
        self.namespace_link = f"sr{os.getpid()}{instance}n"
        self.subnet: ipaddress.IPv4Network | None = None
        self.host_address = ""
        self.address = ""
        self.server: _NamespacedRedisServer | None = None
        self._drop_rules = 0
        self._created = False

    @property
    def url(self) -> str:
        return f"rediss://{self.address}:{self.port}/0"

    def _in_namespace(self, *command: str) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.name, *command])

    def start(self) -> "NetworkNamespace":
        _require_tools()
        _sweep_stale()
        try:
            self._create_namespace()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_namespace(self) -> None:
        self.subnet = _pick_subnet()
        host, inside = list(self.subnet.hosts())
        self.host_address, self.address = str(host), str(inside)
        _run(["ip", "netns", "add", self.name])
        self._created = True
        _run(["ip", "link", "add", self.host_link, "type", "veth",
              "peer", "name", self.namespace_link, "netns", self.name])
        _run(["ip", "addr", "add", f"{host}/30", "dev", self.host_link])
        _run(["ip", "link", "set", self.host_link, "up"])
        _run(["ip", "-n", self.name, "addr", "add", f"{inside}/30", "dev", self.namespace_link])
        _run(["ip", "-n", self.name, "link", "set", self.namespace_link, "up"])
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])

    def _start_server(self) -> None:
        cert, key = issue_certificate(self.pki, f"{self.name}-server", client=False, sans=[self.address])
        self.server = _NamespacedRedisServer(
            self.folder / "redis",
            namespace=self.name,
            password=self.password,
            cert=cert,
            key=key,
            ca=self.pki.ca_cert,
            host=self.address,
            pick_port=lambda: self.port,
            extra_config=self.extra_config,
        )
        self.server.start()

    # -- the partition -----------------------------------------------------------------------

    def drop_inbound(self) -> None:
        """Drops every packet entering the namespace: client requests, ACKs and SYNs vanish."""
        self._in_namespace(*_IPTABLES, "-A", "INPUT", "-j", "DROP")
        self._drop_rules += 1

    def heal(self) -> None:
        """Deletes every rule ``drop_inbound`` added; packets flow again."""
        while self._drop_rules:
            self._in_namespace(*_IPTABLES, "-D", "INPUT", "-j", "DROP")
            self._drop_rules -= 1

    def dropped_packets(self) -> int:
        """How many packets the DROP rules have dropped so far (proof the partition was real)."""
        listing = self._in_namespace(*_IPTABLES, "-L", "INPUT", "-v", "-x", "-n").stdout
        return sum(int(line.split()[0]) for line in listing.splitlines()
                   if len(line.split()) > 2 and line.split()[2] == "DROP")

    def sockets_to_server(self) -> list[SocketView]:
        """This machine's TCP sockets toward the server, orphans (closed by their process but
        still retransmitting) included."""
        listing = _run(["ss", "-H", "-t", "-n", "-o", "state", "all",
                        "dst", f"{self.address}:{self.port}"]).stdout
        views: list[SocketView] = []
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) < 5:
                continue
            timer = re.search(r"timer:\(([^)]*)\)", line)
            views.append(SocketView(fields[0], int(fields[2]), fields[3], timer.group(1) if timer else None))
        return views

    # -- cleanup -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Removes everything ``start()`` made; every step is tried, failures are raised after."""
        failures: list[str] = []
        for step in (self._delete_rules, self._stop_server, self._delete_namespace, self._delete_host_link):
            try:
                step()
            except Exception as failure:  # the next steps must run whatever this one did
                failures.append(f"{step.__name__}: {failure}")
        if failures:
            raise RuntimeError(f"cleaning up {self.name} failed: {'; '.join(failures)}")

    def _delete_rules(self) -> None:
        if self._created:
            self.heal()
        self._drop_rules = 0

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _delete_namespace(self) -> None:
        if self._created:
            _run(["ip", "netns", "del", self.name])
            self._created = False

    def _host_link_exists(self) -> bool:
        return _run(["ip", "link", "show", self.host_link], check=False).returncode == 0

    def _delete_host_link(self) -> None:
        # It goes with its peer, but the kernel dismantles a deleted namespace in the
        # background, so it may linger a moment (and vanish between a check and a delete).
        # It stays for good only if the namespace outlived its name; then it is deleted here.
        deadline = time.monotonic() + _LINK_GONE_WITHIN
        while self._host_link_exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._host_link_exists():
            _run(["ip", "link", "del", self.host_link], check=False)
        if self._host_link_exists():
            raise RuntimeError(f"the veth {self.host_link} could not be deleted")
