#!/usr/bin/env python3
"""The benchmark's baseline: the same job as `tagsmith once` done with the git CLI and a regex.

    baseline_update.py REMOTE CLONE_DIR REGISTRY POLICIES

REMOTE is a Git URL (file:// or http://), CLONE_DIR the working copy (cloned when missing,
fetched and hard-reset when present), REGISTRY a plain-http registry host, POLICIES a file of
`policy<TAB>repository<TAB>digest` lines (digest 1 pins the manifest digest in full-reference
markers). Lists every repository's tags (16 at once), picks the highest `X.Y.Z` of major 1,
looks up digests, rewrites the marked values of every file that mentions `$imagepolicy`,
then `git commit -a` and `git push`. Prints one JSON line of its phase timings.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

REMOTE, CLONE, REGISTRY, POLICIES = sys.argv[1:5]
SEMVER = re.compile(r"^1\.(\d+)\.(\d+)$")
MARKER = re.compile(rb'(:[ \t]+"?)([^\s"#]+)("?[ \t]*#[ \t]*\{"\$imagepolicy":[ \t]*"([^"]+)"\})')
ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
# gc.auto=0: a commit of thousands of files would otherwise start a full repack in the
# middle of the timing, which a tuned script would not do either.
GIT = ["git", "-c", "user.name=baseline", "-c", "user.email=baseline@example.invalid", "-c", "gc.auto=0"]


def git(*args, cwd=CLONE):
    subprocess.run(GIT + list(args), cwd=cwd, check=True)


def list_tags(repo):
    url, tags = f"http://{REGISTRY}/v2/{repo}/tags/list", []
    while url:
        with urllib.request.urlopen(url) as reply:
            tags += json.load(reply).get("tags") or []
            link = reply.headers.get("Link")
        url = None
        if link:
            url = f"http://{REGISTRY}" + link.split(";")[0].strip("<> ")
    return tags


def newest(tags):
    best = None
    for tag in tags:
        m = SEMVER.match(tag)
        if m and (best is None or (int(m[1]), int(m[2])) > best[0]):
            best = ((int(m[1]), int(m[2])), tag)
    return best[1] if best else None


def digest(repo, tag):
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": ACCEPT}
    )
    with urllib.request.urlopen(request) as reply:
        return reply.headers["Docker-Content-Digest"]


def main():
    timings, t = {}, time.monotonic()

    def lap(name):
        nonlocal t
        now = time.monotonic()
        timings[name] = round((now - t) * 1000)
        t = now

    if os.path.isdir(os.path.join(CLONE, ".git")):
        git("fetch", "-q", "origin", "main")
        git("reset", "-q", "--hard", "origin/main")
    else:
        git("clone", "-q", "--single-branch", "--branch", "main", REMOTE, CLONE, cwd=None)
    lap("clone_ms")

    policies = {}
    for line in open(POLICIES):
        policy, repo, pin = line.rstrip("\n").split("\t")
        policies[policy] = (repo, pin == "1")
    repos = sorted({repo for repo, _ in policies.values()})
    pinned = {repo for repo, pin in policies.values() if pin}
    with ThreadPoolExecutor(16) as pool:
        selected = dict(zip(repos, pool.map(lambda r: newest(list_tags(r)), repos)))
        wanted = [r for r in repos if r in pinned and selected[r]]
        digests = dict(zip(wanted, pool.map(lambda r: digest(r, selected[r]), wanted)))
    lap("scan_ms")

    def value(marker):
        policy, _, field = marker.decode().partition(":")
        name, _, field = field.partition(":")
        repo, _ = policies.get(f"{policy}:{name}", (None, False))
        tag = selected.get(repo)
        if tag is None:
            return None
        image = f"{REGISTRY}/{repo}"
        return {
            "": f"{image}:{tag}" + (f"@{digests[repo]}" if repo in digests else ""),
            "tag": tag,
            "name": image,
            "digest": digests.get(repo),
        }.get(field)

    def replace(m):
        new = value(m[4])
        return m[1] + new.encode() + m[3] if new else m[0]

    changes = 0
    for dirpath, dirnames, filenames in os.walk(CLONE):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                data = f.read()
            if b"$imagepolicy" not in data:
                continue
            new = MARKER.sub(replace, data)
            if new != data:
                changes += 1
                with open(path, "wb") as f:
                    f.write(new)
    lap("rewrite_ms")
    if changes:
        git("commit", "-q", "-a", "-m", "Update images")
    lap("commit_ms")
    if changes:
        git("push", "-q", "origin", "HEAD:main")
    lap("push_ms")
    timings["changes"] = changes
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
