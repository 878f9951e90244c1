"""Simulated collectors for ``bench/web.py`` (locust, headless): sign in, then open the work queue, open a
case from it and log a call outcome, over and over. Collector names come from BENCH_WEB_USERS."""

from __future__ import annotations

import itertools
import os
import random
import re

from locust import HttpUser, between, task

USERS = itertools.cycle(os.environ.get("BENCH_WEB_USERS", "agent0").split(","))
PASSWORD = os.environ.get("BENCH_WEB_PASSWORD", "bench-password-1")
CASE_LINK = re.compile(r'href="/cases/(\d+)(?:\?item=(\d+))?"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
POINT = re.compile(r'<select name="contact_point_id"[^>]*>\s*<option value="(\d+)"')


# Seconds between clicks, "low-high" (bench/web.py's docstring says why the default is 1-3).
THINK = tuple(float(v) for v in os.environ.get("BENCH_WEB_THINK", "1-3").split("-", 1))


class Collector(HttpUser):
    wait_time = between(THINK[0], THINK[-1])  # a person reads the page before the next click

    def on_start(self) -> None:
        self.username = next(USERS)
        page = self.client.get("/login", name="sign-in")
        token = CSRF.search(page.text)
        assert token, "no CSRF token on the sign-in page"
        done = self.client.post(
            "/login",
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrf_token": token.group(1),
                "next": "/queue",
            },
            allow_redirects=False,
            name="sign-in",
        )
        assert done.status_code == 303, done.text[:500]
        self.cases: list[int] = []

    @task
    def day(self) -> None:
        queue = self.client.get("/queue", name="work queue")
        self.cases = [int(m.group(1)) for m in CASE_LINK.finditer(queue.text)] or self.cases
        if not self.cases:
            return
        case_id = random.choice(self.cases[:50])
        page = self.client.get(f"/cases/{case_id}", name="case page")
        token = CSRF.search(page.text)
        point = POINT.search(page.text)
        if token is None or point is None:
            return
        with self.client.post(
            f"/cases/{case_id}/attempts",
            data={"csrf_token": token.group(1), "contact_point_id": point.group(1), "outcome": "no_answer"},
            allow_redirects=False,
            name="post outcome",
            catch_response=True,
        ) as answer:
            # 303: recorded; 409: the gate blocked it (e.g. the day's call cap) and it is recorded as blocked
            if answer.status_code in (303, 409):
                answer.success()
            else:
                answer.failure(f"status {answer.status_code}")
