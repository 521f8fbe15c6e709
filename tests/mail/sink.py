"""SMTP sink for the mail tests: accepts every message on 127.0.0.1:PORT and stores each one
as a file in DIR (written to a temporary name, then renamed to NNNNNN.eml, so a reader never
sees half a message). Prints "ready" once it listens. Stops on SIGTERM/SIGINT or when its
parent (the test process) goes away.

    python tests/mail/sink.py --port 2525 --dir /tmp/mails
"""

import argparse
import asyncio
import itertools
import os
import signal

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        tmp = os.path.join(self.directory, f".{n:06d}.tmp")
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, f"{n:06d}.eml"))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Store(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    parent = os.getppid()

    stop = asyncio.Event()

    async def watch():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            if os.getppid() != parent:
                break
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    asyncio.run(watch())
    controller.stop()


if __name__ == "__main__":
    main()
