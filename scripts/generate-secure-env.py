#!/usr/bin/env python3
"""Writes a commented .env with environment-appropriate secrets, or checks one.

    generate-secure-env.py --environment development|staging|production [--output PATH] [--force]
    generate-secure-env.py --validate-only [--output PATH] [--connect]

A thin front end over `secure-redis generate-env` (pip users have that command)."""

import sys

from secure_redis.cli import main

sys.exit(main(["generate-env", *sys.argv[1:]]))
