#!/usr/bin/env python3
"""A download that stalls once: GET /media/f.bin from 127.0.0.1:PORT, reading as fast as it
can, except for one pause of PAUSE_MS after the first 64 MiB (a client descheduled once).
Prints MiB/s over what came after the pause: what that one pause cost the rest of the run.

    scripts/bench/pause_once.py PORT PAUSE_MS [PATH]   (PATH defaults to /media/f.bin)
"""
import socket
import sys
import time


def main():
    port, pause = int(sys.argv[1]), float(sys.argv[2]) / 1000
    path = sys.argv[3] if len(sys.argv) > 3 else "/media/f.bin"
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got, after_at, after_got = 0, None, 0
    while True:
        n = s.recv_into(view)
        if n == 0:
            break
        got += n
        if after_at is None and got >= 64 << 20:
            time.sleep(pause)
            after_at, after_got = time.perf_counter(), got
    if after_at is None:
        sys.exit("the response ended before 64 MiB")
    print(f"{(got - after_got) / (time.perf_counter() - after_at) / 1048576:.0f}")


if __name__ == "__main__":
    main()
