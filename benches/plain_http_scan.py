#!/usr/bin/env python3
"""The lower bound for a registry scan: plain parallel HTTP paging of /v2/<name>/tags/list.

One keep-alive connection per worker, no auth, no retries, no parsing beyond what paging
needs. Prints {"seconds": ..., "tags": ...} for the scan alone (interpreter start excluded).

usage: plain_http_scan.py HOST CONCURRENCY REPO...
"""
import http.client
import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
local = threading.local()


def connection(host):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = http.client.HTTPConnection(host, timeout=30)
        local.conn = conn
    return conn


def scan(host, repo):
    path = f"/v2/{repo}/tags/list"
    tags = []
    while path:
        conn = connection(host)
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"{repo}: http {resp.status}")
        tags.extend(json.loads(body).get("tags") or [])
        match = LINK.search(resp.getheader("Link") or "")
        path = match.group(1) if match else None
    return len(set(tags))


def main():
    host, concurrency, repos = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        total = sum(pool.map(lambda r: scan(host, r), repos))
    print(json.dumps({"seconds": time.perf_counter() - start, "tags": total}))


if __name__ == "__main__":
    main()
