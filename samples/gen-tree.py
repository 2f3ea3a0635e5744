#!/usr/bin/env python3
"""Generate the files of the sample VM web01, deterministically.

    gen-tree.py base DIR        the root filesystem tree mkfs.ext4 -d packs
    gen-tree.py layer N DIR     the new/changed files of layer N (1..3),
                                flat, named as build-sample.sh expects

Every byte comes from fixed seeds (random.Random(seed)); nothing depends
on the clock, the host or the Python hash seed. Standard library only.
"""
import os
import random
import sys

KIB = 1024
MIB = 1024 * KIB


def rng(tag):
    # A string seed is hashed with SHA-512 by random.seed (version 2),
    # independent of PYTHONHASHSEED, so the stream is stable.
    return random.Random("snapport-sample:" + tag)


def put(root, rel, data, mode=0o644):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def random_bytes(tag, n):
    return rng(tag).randbytes(n)


def elf_like(tag, n):
    """A fake executable: an ELF-ish header, random 'code', a string table."""
    r = rng(tag)
    head = b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\x3e\x00\x01\x00\x00\x00"
    strings = b"".join(b"%s_%04d\x00" % (w, i)
                       for i, w in enumerate(
                           r.choice([b"http_handler", b"route", b"tls_init",
                                     b"json_parse", b"log_write", b"cfg_get"])
                           for _ in range(2000)))
    code = r.randbytes(max(0, n - len(head) - len(strings)))
    return (head + code + strings)[:n]


WORDS = ("the quick brown fox jumps over lazy dog server request response "
         "cache static content index page user admin backup snapshot disk "
         "volume network bridge kernel module service timer socket").split()


def prose(tag, n):
    r = rng(tag)
    out = []
    size = 0
    while size < n:
        line = " ".join(r.choice(WORDS) for _ in range(r.randint(6, 14)))
        line = line.capitalize() + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:n]


PATHS = ["/", "/index.html", "/about.html", "/css/site.css", "/img/logo.png",
         "/img/banner.jpg", "/api/v1/status", "/api/v1/items", "/favicon.ico",
         "/blog/", "/blog/2024-01-snapshots.html", "/login", "/robots.txt"]
AGENTS = ["curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64) Firefox/115.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
          "Prometheus/2.42.0", "Go-http-client/1.1"]


def access_log(tag, lines, start_day):
    r = rng(tag)
    out = []
    for i in range(lines):
        day = start_day + i * 7 // lines
        sec = (i * 37) % 86400
        ip = "10.0.%d.%d" % (r.randint(0, 9), r.randint(2, 254))
        status = r.choice([200] * 12 + [304, 404, 500])
        out.append('%s - - [%02d/Mar/2024:%02d:%02d:%02d +0000] "GET %s HTTP/1.1" '
                   '%d %d "-" "%s"\n' % (ip, day, sec // 3600, sec // 60 % 60,
                                        sec % 60, r.choice(PATHS), status,
                                        r.randint(0, 90000), r.choice(AGENTS)))
    return "".join(out)


def syslog(tag, lines):
    r = rng(tag)
    units = ["nginx.service", "webapp.service", "cron", "sshd", "systemd",
             "kernel", "chronyd"]
    out = []
    for i in range(lines):
        out.append("Mar %2d %02d:%02d:%02d web01 %s[%d]: %s\n" % (
            1 + i * 28 // lines, i % 24, i % 60, (i * 7) % 60,
            r.choice(units), r.randint(100, 9999),
            " ".join(r.choice(WORDS) for _ in range(r.randint(4, 10)))))
    return "".join(out)


def html(title, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>%s</title>\n<link rel=\"stylesheet\" href=\"/css/site.css\">\n"
            "</head>\n<body>\n<h1>%s</h1>\n%s\n</body>\n</html>\n"
            % (title, title, body))


def base(root):
    put(root, "etc/hostname", "web01\n")
    put(root, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tweb01\n"
        "10.0.0.1\tgateway\n10.0.0.53\tns1\n")
    put(root, "etc/fstab", "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "LABEL=web01-root / ext4 errors=remount-ro 0 1\n")
    put(root, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
        'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n')
    put(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
        "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
        "admin:x:1000:1000:Admin,,,:/home/admin:/bin/bash\n")
    put(root, "etc/group", "root:x:0:\nwww-data:x:33:\nadmin:x:1000:\nsudo:x:27:admin\n")
    put(root, "etc/motd", "web01 - managed by snapport sample\n")
    put(root, "etc/ssh/sshd_config", "Port 22\nPermitRootLogin no\n"
        "PasswordAuthentication no\nPubkeyAuthentication yes\nUsePAM yes\n"
        "X11Forwarding no\nSubsystem sftp /usr/lib/openssh/sftp-server\n")
    put(root, "etc/nginx/nginx.conf", "user www-data;\nworker_processes 2;\n"
        "pid /run/nginx.pid;\nevents { worker_connections 768; }\nhttp {\n"
        "    sendfile on;\n    tcp_nopush on;\n    include /etc/nginx/mime.types;\n"
        "    access_log /var/log/nginx/access.log;\n"
        "    error_log /var/log/nginx/error.log;\n"
        "    include /etc/nginx/conf.d/*.conf;\n"
        "    include /etc/nginx/sites-enabled/*;\n}\n")
    put(root, "etc/nginx/sites-available/default", "server {\n    listen 80 default_server;\n"
        "    root /var/www/html;\n    index index.html;\n    server_name web01;\n"
        "    location /api/ { proxy_pass http://127.0.0.1:8080; }\n}\n")
    os.makedirs(os.path.join(root, "etc/nginx/sites-enabled"), exist_ok=True)
    os.symlink("../sites-available/default",
               os.path.join(root, "etc/nginx/sites-enabled/default"))
    os.makedirs(os.path.join(root, "etc/nginx/conf.d"), exist_ok=True)

    put(root, "var/www/html/index.html", html("web01", "<p>Version 1.0</p>\n<p>"
        + prose("index", 2000) + "</p>"))
    put(root, "var/www/html/about.html", html("About", "<p>" + prose("about", 6000) + "</p>"))
    put(root, "var/www/html/css/site.css", "body { font-family: sans-serif; margin: 2em; }\n"
        "h1 { color: #224; }\n" * 40)
    put(root, "var/www/html/img/logo.png", b"\x89PNG\r\n\x1a\n" + random_bytes("logo", 48 * KIB))
    put(root, "var/www/html/img/banner.jpg", b"\xff\xd8\xff\xe0" + random_bytes("banner", 300 * KIB))

    put(root, "usr/local/bin/webapp", elf_like("webapp-1.0", 4 * MIB), 0o755)
    put(root, "usr/local/lib/libweb.so.1", elf_like("libweb-1", 1536 * KIB), 0o755)
    put(root, "usr/local/bin/backup.sh", "#!/bin/sh\nset -e\n"
        "tar -C /var/www -czf /srv/data/www-$(date +%F).tar.gz html\n", 0o755)

    put(root, "var/log/nginx/access.log", access_log("access-1", 24000, 1))
    put(root, "var/log/nginx/error.log", syslog("nginx-error", 800))
    put(root, "var/log/syslog", syslog("syslog-1", 9000))

    put(root, "home/admin/.bashrc", "export PS1='\\u@\\h:\\w\\$ '\nalias ll='ls -l'\n")
    put(root, "home/admin/.ssh/authorized_keys",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF8s0Z1nV3pY2b8vJmQk7cRr6sTt9uUw0xXyYzAbCdEf admin@laptop\n",
        0o600)
    put(root, "home/admin/notes.txt", prose("notes", 12 * KIB))

    for i in range(8):
        put(root, "srv/data/blob-%03d.bin" % i, random_bytes("blob-%d" % i, MIB))
    for i in range(120):
        put(root, "opt/app/static/page-%03d.txt" % i, prose("static-%d" % i, 300 + 97 * i))
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)


def layer(n, d):
    """Payload files for layer n. build-sample.sh decides where they go."""
    os.makedirs(d, exist_ok=True)
    if n == 1:   # security update + config change
        put(d, "webapp", elf_like("webapp-1.1", 4 * MIB + 123 * KIB), 0o755)
        put(d, "gzip.conf", "gzip on;\ngzip_types text/css application/json;\n")
        put(d, "index.html", html("web01", "<p>Version 1.1</p>\n<p>"
            + prose("index", 2000) + "</p>"))
        put(d, "access.log", access_log("access-1", 24000, 1)
            + access_log("access-2", 6000, 8))
    elif n == 2:  # content deployment, old blobs removed
        for i in range(5):
            put(d, "photo-%02d.jpg" % i, b"\xff\xd8\xff\xe0" + random_bytes("photo-%d" % i, 200 * KIB))
        put(d, "post-1.html", html("Snapshots", prose("post-1", 9000)))
        put(d, "post-2.html", html("Coalesce", prose("post-2", 7000)))
        put(d, "blob-008.bin", random_bytes("blob-8", 3 * MIB // 2))
    elif n == 3:  # log rotation, database file, cleanup
        put(d, "access.log", access_log("access-3", 1500, 15))
        put(d, "syslog", syslog("syslog-2", 3000))
        put(d, "app.db", random_bytes("appdb", 2 * MIB))
        put(d, "libweb.so.1", elf_like("libweb-1", 1536 * KIB)[:MIB]
            + elf_like("libweb-1.1", 512 * KIB), 0o755)
    else:
        raise SystemExit("gen-tree.py: no layer %d" % n)


def main(argv):
    if len(argv) == 3 and argv[1] == "base":
        base(argv[2])
    elif len(argv) == 4 and argv[1] == "layer":
        layer(int(argv[2]), argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
