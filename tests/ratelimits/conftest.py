from tests.ratelimits.fixtures import argon2_runs, production_limits

__all__ = ["argon2_runs", "production_limits"]
