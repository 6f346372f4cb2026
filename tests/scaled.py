"""Run the integration suite against the scaled configuration: PostgreSQL and Redis.

Starts both servers on loopback, runs pytest with DATABASE_URL and CELERY_BROKER_URL
pointing at them, and stops them again, whatever the outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import postgres_server, redis_server  # noqa: E402

# The integration folders that exercise the database and the broker.
SUITES = ["tests/integration"]


def main() -> int:
    with postgres_server() as database_url, redis_server() as broker_url:
        env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url, "VITRINE_SCALED": "1"}
        print(f"scaled configuration: {database_url} and {broker_url}", flush=True)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "integration", *sys.argv[1:], *SUITES]
        return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
