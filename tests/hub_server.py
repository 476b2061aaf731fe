"""A Hugging Face Hub endpoint on 127.0.0.1 for tests, so the Hub's own client is what downloads.

It answers what ``huggingface_hub.hf_hub_download`` asks (file_download.py): a HEAD, then a
GET, on ``/{repo_id}/resolve/{revision}/{filename}``. A file it has answers with the headers
the client needs, ``X-Repo-Commit`` (the commit), ``ETag`` (the blob id, here the sha256 of
the bytes served, as the Hub gives for LFS files) and ``Content-Length``; a file it lacks is
a 404 with ``X-Error-Code: EntryNotFound``, as the Hub answers. Every request is logged, so
a test can assert that an offline call made none.

    with FakeHub() as hub:
        hub.add("zoo/weights", "a" * 40, "w.safetensors", data)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import urllib.parse

RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")


class FakeHub:
    """Files by (repo, revision, filename), served over HTTP on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the test reads hub.requests
                pass

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                match = RESOLVE.match(urllib.parse.urlsplit(self.path).path)
                key = tuple(urllib.parse.unquote(match[k]) for k in ("repo", "revision", "filename")) if match else None
                data = hub.files.get(key) if key else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", key[1])
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def file_requests(self) -> list[tuple[str, str]]:
        """The requests for files (``/resolve/``): not the client's own look-ups (huggingface_hub 2.x asks the
        endpoint for a registry of agent tools, at most once a day)."""
        return [(method, path) for method, path in self.requests if "/resolve/" in path]

    def add(self, repo: str, revision: str, filename: str, data: bytes) -> None:
        self.files[(repo, revision, filename)] = data

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
