#!/usr/bin/env python3
"""Prints a new Fernet key; `--rotate` prints NEW,KEYS with KEYS read from REDIS_ENCRYPTION_KEY
(`--rotate -`: from stdin; keys as an argument are refused, since every local user can read argv).

A thin front end over `secure-redis generate-key` (pip users have that command)."""

import sys

from secure_redis.cli import main

sys.exit(main(["generate-key", *sys.argv[1:]]))
