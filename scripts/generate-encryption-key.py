#!/usr/bin/env python3
"""Prints a new Fernet key; `--rotate [KEYS]` prints NEW,KEYS (KEYS defaults to REDIS_ENCRYPTION_KEY).

A thin front end over `secure-redis generate-key` (pip users have that command)."""

import sys

from secure_redis.cli import main

sys.exit(main(["generate-key", *sys.argv[1:]]))
