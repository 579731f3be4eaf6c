"""Checks the release wheels' promises before anyone uploads them (scripts/build-release.sh).

For every wheel given: the filename's tags and the WHEEL file's Tag lines are exactly the ones
expected for its target (cp310-abi3 and the platform tag), the extension's ELF machine is the
target's, ``auditwheel show`` (pinned in requirements-release.txt) finds the wheel consistent
with that platform tag, and the shared libraries it needs are the C library's own. For a
manylinux2014 wheel the highest GLIBC_x.y symbol version needed must be 2.17 or lower; it is
read twice, from auditwheel's report and from the ELF version-need table itself.

Usage: check-release-wheels.py REPORT.json WHEEL...   (exit 1 on any failure)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.dynamic import DynamicSection
from elftools.elf.gnuversions import GNUVerNeedSection

# platform tags (a set: maturin writes the legacy alias first) -> (ELF e_machine, libc, the
# newest libc symbol version allowed)
EXPECTED = {
    frozenset({"manylinux_2_17_x86_64", "manylinux2014_x86_64"}): ("EM_X86_64", "glibc", (2, 17)),
    frozenset({"manylinux_2_17_aarch64", "manylinux2014_aarch64"}): ("EM_AARCH64", "glibc", (2, 17)),
    frozenset({"musllinux_1_2_x86_64"}): ("EM_X86_64", "musl", None),
    frozenset({"musllinux_1_2_aarch64"}): ("EM_AARCH64", "musl", None),
}
# What the extension may link dynamically: the C library and its split-out parts, libgcc_s.
GLIBC_LIBS = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libgcc_s.so.1",
              "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
MUSL_LIBS = {"libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libgcc_s.so.1"}


def version_tuple(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("_", 1)[1].split("."))


def elf_facts(path: Path) -> dict:
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        needed = []
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                needed += [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
        glibc = []
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    glibc += [aux.name for aux in auxiliaries if aux.name.startswith("GLIBC_")]
        return {"machine": elf["e_machine"], "needed": sorted(needed), "glibc_versions": sorted(set(glibc), key=version_tuple)}


def check(wheel: Path) -> tuple[dict, list[str]]:
    problems: list[str] = []
    name_tags = wheel.name.removesuffix(".whl").split("-")[-3:]
    python_tag, abi_tag, platform_tag = name_tags
    facts: dict = {"wheel": wheel.name, "size_bytes": wheel.stat().st_size, "tags": "-".join(name_tags)}
    if (python_tag, abi_tag) != ("cp310", "abi3"):
        problems.append(f"expected cp310-abi3, got {python_tag}-{abi_tag}")
    platforms = frozenset(platform_tag.split("."))
    if platforms not in EXPECTED:
        expected = [".".join(sorted(tags)) for tags in EXPECTED]
        problems.append(f"unexpected platform tag {platform_tag} (expected one of {expected})")
        return facts, problems
    machine, libc, newest = EXPECTED[platforms]

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        wheel_meta = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/WHEEL"))
        declared = sorted(line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:"))
        wanted = sorted(f"{python_tag}-{abi_tag}-{p}" for p in platforms)  # what the filename says
        if declared != wanted:
            problems.append(f"WHEEL Tag lines {declared} != the filename's {wanted}")
        extensions = [n for n in names if re.search(r"/_native[^/]*\.so$", n)]
        if len(extensions) != 1:
            problems.append(f"expected one _native extension, found {extensions}")
            return facts, problems
        with tempfile.TemporaryDirectory() as folder:
            archive.extract(extensions[0], folder)
            elf = elf_facts(Path(folder) / extensions[0])
    facts.update(extension=extensions[0], machine=elf["machine"], needed=elf["needed"])
    if elf["machine"] != machine:
        problems.append(f"extension is {elf['machine']}, expected {machine}")
    allowed = GLIBC_LIBS if libc == "glibc" else MUSL_LIBS
    if set(elf["needed"]) - allowed:
        problems.append(f"links libraries outside the C library: {sorted(set(elf['needed']) - allowed)}")

    show = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True)
    print(show.stdout.strip() or show.stderr.strip())
    report = subprocess.run(["auditwheel", "show", "--json", str(wheel)], capture_output=True, text=True)
    try:
        audit = json.loads(report.stdout)
    except json.JSONDecodeError:
        problems.append(f"auditwheel show failed: {report.stderr.strip()[-500:]}")
        return facts, problems
    if "error" in audit:
        problems.append(f"auditwheel show: {audit['error']}")
        return facts, problems
    facts["auditwheel_tag"] = audit["overall_tag"]
    facts["auditwheel_versioned_symbols"] = audit["versioned_symbols"]
    # the PEP 600 name (manylinux_2_17_..., musllinux_1_2_...), the one auditwheel reports
    first_tag = next(tag for tag in sorted(platforms) if re.match(r"(manylinux|musllinux)_\d+_\d+_", tag))
    # auditwheel names the most compatible policy the wheel satisfies; it must be ours or older.
    policy = re.match(r"(manylinux|musllinux)_(\d+)_(\d+)_", audit["overall_tag"])
    ours = re.match(r"(manylinux|musllinux)_(\d+)_(\d+)_", first_tag)
    if not policy or policy.group(1) != ours.group(1) or \
            (int(policy.group(2)), int(policy.group(3))) > (int(ours.group(2)), int(ours.group(3))):
        problems.append(f"auditwheel: consistent with {audit['overall_tag']}, not {first_tag}")

    if libc == "glibc":
        from_audit = sorted({v for versions in audit["versioned_symbols"].values() for v in versions
                             if v.startswith("GLIBC_")}, key=version_tuple)
        highest = max(from_audit + elf["glibc_versions"], key=version_tuple, default="GLIBC_2.0")
        facts["highest_libc_requirement"] = highest
        if version_tuple(highest) > newest:
            problems.append(f"needs {highest}, more than GLIBC_{newest[0]}.{newest[1]}")
        if from_audit and from_audit[-1] != elf["glibc_versions"][-1]:
            problems.append(f"auditwheel ({from_audit[-1]}) and the ELF table ({elf['glibc_versions'][-1]}) disagree")
    else:
        facts["highest_libc_requirement"] = f"{audit['overall_tag']} (musl; auditwheel policy)"
        if elf["glibc_versions"]:
            problems.append(f"a musl wheel needs glibc symbols: {elf['glibc_versions']}")
        if not any(lib.startswith("libc.musl-") for lib in elf["needed"]):
            problems.append(f"does not link musl's libc: {elf['needed']}")
    return facts, problems


def main() -> int:
    report_path, wheels = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    results, failed = [], False
    for wheel in wheels:
        print(f"--- {wheel.name}")
        facts, problems = check(wheel)
        facts["problems"] = problems
        results.append(facts)
        for key in ("tags", "auditwheel_tag", "highest_libc_requirement", "needed"):
            print(f"    {key}: {facts.get(key)}")
        for problem in problems:
            print(f"    FAIL: {problem}")
        failed |= bool(problems)
        print(f"    {'FAILED' if problems else 'ok'}")
    report_path.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
