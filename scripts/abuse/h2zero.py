#!/usr/bin/env python3
"""h2c connections x streams of GET path with a zero initial window; holds them `hold` s."""
import socket, sys, time
import h2.connection, h2.config, h2.settings
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
nconn, nstreams, hold = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
src = sys.argv[7] if len(sys.argv) > 7 else None
socks = []
for i in range(nconn):
    s = socket.socket()
    if src: s.bind((src, 0))
    try:
        s.connect((host, port))
    except OSError as e:
        print("connect failed", i, e); break
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    for k in range(nstreams):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", f"{host}:{port}")], end_stream=True)
    try:
        s.sendall(c.data_to_send())
    except OSError as e:
        print("send failed", i, e); break
    socks.append((s, c))
print("opened", len(socks), flush=True)
end = time.time() + hold
while time.time() < end:
    time.sleep(1)
    for s, c in socks:
        s.setblocking(False)
        try:
            while True:
                d = s.recv(65536)
                if not d: break
                try:
                    c.receive_data(d)
                except Exception:
                    break
                # answer pings (as a real client library does), never open the window
                out = c.data_to_send()
                if out: s.send(out)
        except (BlockingIOError, OSError):
            pass
print("closing", flush=True)
