#!/usr/bin/env python3
"""Checks that a file is an ELF executable for the given machine (`aarch64` or `x86_64`).

Usage: elf_machine.py FILE MACHINE. Exit 0 when it is; 1 with the reason otherwise.
Reads the ELF header (e_ident, e_type, e_machine) as the ELF specification lays it out.
"""
import struct
import sys

MACHINES = {"aarch64": 183, "x86_64": 62}
TYPES = {2: "executable", 3: "shared object (PIE executable)"}


def main(path: str, machine: str) -> int:
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        print(f"{path}: not an ELF file")
        return 1
    order = "<" if head[5] == 1 else ">"
    e_type, e_machine = struct.unpack(order + "HH", head[16:20])
    if e_type not in TYPES:
        print(f"{path}: ELF type {e_type}, not an executable")
        return 1
    if e_machine != MACHINES[machine]:
        print(f"{path}: ELF machine {e_machine}, not {machine} ({MACHINES[machine]})")
        return 1
    print(f"{path}: ELF {TYPES[e_type]}, {machine}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
