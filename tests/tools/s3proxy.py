"""s3proxy: a fault-injecting HTTP/1.1 proxy between the S3 client and rgw
for the S3 tests (stdlib only).

    p = s3proxy.FaultProxy(("127.0.0.1", port), drop={1}, busy={2},
                           slowdown=3, stall=1, corrupt_parts=1, corrupt_gets=1,
                           rate=8 << 20, get_rate=4 << 20)
    ... snapport --endpoint p.endpoint ...
    p.seen["part"], p.counts["slowdown"], p.counts["corrupted part"] ...
    p.close()

Connections are numbered from 1 as they are accepted: those in `drop` are
closed at once (curl: empty reply), those in `busy` answer 503. Every other
connection is passed through byte for byte (SigV4 signs the Host header the
client sent, which rgw gets unchanged) while both directions are followed
request by request (Content-Length bodies, as curl sends them), so that
single requests can be hit:
  slowdown       the first N UploadParts are answered 429 SlowDown by the proxy
  stall          the first N UploadParts get no answer at all (the
                 connection stays open, silent, until the client gives up)
  corrupt_parts  the first N UploadParts reach rgw with one byte of their
                 body flipped (Content-Length and the client's digests kept)
  corrupt_gets   the first N 206 answers (ranged GETs) reach the client with
                 one byte of their body flipped
  rate           request bodies are passed at most this many bytes/s per
                 connection (a slow link: an upload lasts long enough to be
                 interrupted)
  get_rate       the same for the bodies of 206 answers (a slow download)
  lose_deletes   the first N answers to a DELETE (an abort) are lost: rgw
                 did it, the connection is closed before the client hears
  silent         (an attribute, set at any time) from then on no request
                 gets an answer: a server that takes connections and
                 requests and never answers them
seen counts requests by kind ("part", "get", "other"), peak the most request
bodies of a kind that were passed at the same time; counts what the proxy
did (first: when it first did it, time.monotonic()), rgw's answers to parts
by status ("part 400": a corrupted part refused) and connections rgw
refused ("rgw down").
"""

import collections
import socket
import threading
import time

HEAD_MAX = 64 * 1024
SLOWDOWN = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s")
SLOWDOWN_XML = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code></Error>"
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def parse_head(head):
    """(first line, {lowercase name: value}) of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    return lines[0], fields


def flipped(data, i):
    """data with its byte i changed (if it has one: i may be out of it)."""
    if 0 <= i < len(data):
        return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
    return data


class Closed(Exception):
    pass


class Reader:
    """Bytes from a socket with the ones read ahead kept."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def more(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEAD_MAX:
                raise Closed()
            self.more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head + b"\r\n\r\n"

    def chunk(self, limit):
        if not self.buf:
            self.more()
        data, self.buf = self.buf[:limit], self.buf[limit:]
        return data


class FaultProxy:
    def __init__(self, target, drop=(), busy=(), slowdown=0, stall=0, corrupt_parts=0, corrupt_gets=0, rate=0, get_rate=0,
                 lose_deletes=0):
        self.target = target
        self.drop, self.busy = set(drop), set(busy)
        self.budget = {"slowdown": slowdown, "stall": stall, "corrupted part": corrupt_parts,
                       "corrupted get": corrupt_gets, "lost DELETE answer": lose_deletes}
        self.rate, self.get_rate = rate, get_rate
        self.seen = collections.Counter()
        self.counts = collections.Counter()
        self.first = {}
        self.active, self.peak = collections.Counter(), collections.Counter()
        self.lock = threading.Lock()
        self.socks = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        self.closed = False
        self.silent = False
        threading.Thread(target=self.serve, daemon=True).start()

    # ------------------------------------------------------------ bookkeeping
    def take(self, what):
        """Whether the fault `what` has one more use left (and uses it)."""
        with self.lock:
            if self.budget[what] <= 0:
                return False
            self.budget[what] -= 1
            self.counts[what] += 1
            return True

    def note(self, counter, key):
        with self.lock:
            counter[key] += 1
            if counter is self.counts:
                self.first.setdefault(key, time.monotonic())

    def flowing(self, kind, step):
        """Bodies of kind being passed now, and the most there were at once."""
        with self.lock:
            self.active[kind] += step
            self.peak[kind] = max(self.peak[kind], self.active[kind])

    def keep(self, s):
        with self.lock:
            self.socks.append(s)

    # ------------------------------------------------------------ connections
    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.keep(c)
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self.one, args=(c, n), daemon=True).start()

    def one(self, c, n):
        if n in self.drop:
            c.close()
            return
        if n in self.busy:
            c.recv(65536)
            c.sendall(BUSY)
            c.close()
            return
        try:
            u = socket.create_connection(self.target)
        except OSError:
            self.note(self.counts, "rgw down")
            c.close()  # the client sees an empty reply
            return
        self.keep(u)
        methods = collections.deque()  # of the requests sent on, for their answers
        threading.Thread(target=self.answers, args=(u, c, methods), daemon=True).start()
        self.requests(c, u, methods)

    @staticmethod
    def shut(*socks):
        """Ends the connection both ways: shutdown wakes the other thread,
        close makes the kernel reset what is still sent to it (a socket
        only shut down would take a client's body into a full window)."""
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for s in socks:
            s.close()

    # ------------------------------------------------------------ client -> rgw
    def requests(self, c, u, methods):
        r = Reader(c)
        try:
            while True:
                head = r.head()
                line, fields = parse_head(head)
                method, path = (line.split(" ") + ["", ""])[:2]
                kind = "part" if method == "PUT" and "partNumber=" in path else \
                    "get" if method == "GET" and "range" in fields else "other"
                self.note(self.seen, kind)
                length = int(fields.get("content-length", "0"))
                if self.silent:
                    self.note(self.counts, "silenced " + method)
                    self.swallow(r)
                    break
                if kind == "part" and self.take("slowdown"):
                    self.refuse(r, c, fields, length)
                    break
                if kind == "part" and self.take("stall"):
                    self.swallow(r)
                    break
                flip = length // 2 if kind == "part" and length and self.take("corrupted part") else -1
                methods.append((method, kind))
                u.sendall(head)
                self.flowing(kind, 1)
                try:
                    self.body(r, u, length, flip)
                finally:
                    self.flowing(kind, -1)
        except (Closed, OSError, ValueError):
            pass
        self.shut(c, u)

    def refuse(self, r, c, fields, length):
        """429 SlowDown, after the body unless the client waits for 100."""
        if "100-continue" not in fields.get("expect", "").lower():
            while length > 0:
                length -= len(r.chunk(length))
        c.sendall(SLOWDOWN % (len(SLOWDOWN_XML), SLOWDOWN_XML))

    def swallow(self, r):
        """Reads what comes and answers nothing until the client leaves."""
        while not self.closed:
            r.buf = b""
            r.more()

    def body(self, r, u, length, flip):
        off, t0 = 0, time.monotonic()
        while off < length:
            data = flipped(r.chunk(min(length - off, 65536)), flip - off)
            u.sendall(data)
            off += len(data)
            if self.rate:
                ahead = off / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    # ------------------------------------------------------------ rgw -> client
    def answers(self, u, c, methods):
        r = Reader(u)
        try:
            while True:
                head = r.head()
                line, fields = parse_head(head)
                status = int(line.split(" ")[1])
                if status >= 200 and methods and methods[0][0] == "DELETE" and self.take("lost DELETE answer"):
                    break
                c.sendall(head)
                if status < 200:
                    continue  # 100 Continue: the answer follows
                method, kind = methods.popleft() if methods else ("?", "other")
                if kind == "part":
                    self.note(self.counts, "part %d" % status)
                if "chunked" in fields.get("transfer-encoding", "").lower():
                    self.pass_rest(r, c)
                    return
                length = 0 if method == "HEAD" or status in (204, 304) else int(fields.get("content-length", "0"))
                flip = length // 2 if status == 206 and length and self.take("corrupted get") else -1
                rate = self.get_rate if status == 206 else 0
                off, t0 = 0, time.monotonic()
                while off < length:
                    data = flipped(r.chunk(min(length - off, 65536) if rate else length - off), flip - off)
                    c.sendall(data)
                    off += len(data)
                    if rate and off / rate > time.monotonic() - t0:
                        time.sleep(off / rate - (time.monotonic() - t0))
        except (Closed, OSError, ValueError, IndexError):
            pass
        self.shut(c, u)

    @staticmethod
    def pass_rest(r, c):
        """A chunked answer: no more following, bytes as they come."""
        try:
            if r.buf:
                c.sendall(r.buf)
            while True:
                data = r.sock.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass

    def close(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            socks, self.socks = self.socks, []
        self.shut(*socks)
        for s in socks:
            s.close()
