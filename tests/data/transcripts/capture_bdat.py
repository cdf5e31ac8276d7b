"""Capture ``postfix-cs-bdat.txt``: a BDAT (RFC 3030) session with Postfix as a C:/S: listing.

No terminal client speaks BDAT (swaks 20201014 has no CHUNKING, telnet cannot count octets),
so this script is the client: raw socket writes to the Postfix test server (``.ci/postfix-setup``,
127.0.0.1:10025, loopback only), each reply read before the next write, and every line printed
as sent or received, ``C: `` for ours and ``S: `` for the server's (RFC 5321 appendix D). A
chunk's octets are printed as the lines they hold; a chunk that ends inside a line shows that
part of the line as a line of its own, and the next chunk starts with the rest.

Usage, from the repository root::

    python3 tests/data/transcripts/capture_bdat.py > tests/data/transcripts/postfix-cs-bdat.txt
"""

from __future__ import annotations

import socket
import sys

MESSAGE = (
    b"From: <sender@client.test>\r\n"
    b"To: <bdat-import@record.test>\r\n"
    b"Subject: chunked\r\n"
    b"\r\n"
    b"A message in three chunks.\r\n"
    b".a line starting with a dot, not stuffed\r\n"
    b".\r\n"
    b"The second chunk ends inside this line, and the last one sends the rest.\r\n"
)
_FIRST = MESSAGE.index(b"A message")  # the header and the blank line
_SECOND = MESSAGE.index(b"inside this line") + len(b"inside")


def main() -> None:
    with socket.create_connection(("127.0.0.1", 10025), timeout=10) as sock:
        replies = sock.makefile("rb")

        def reply() -> None:
            while True:
                line = replies.readline()
                if not line:
                    raise SystemExit("the server closed the connection")
                print("S: " + line.decode().rstrip("\r\n"))
                if line[3:4] != b"-":
                    return

        def command(text: str) -> None:
            print("C: " + text)
            sock.sendall(text.encode() + b"\r\n")
            reply()

        def chunk(octets: bytes, last: bool) -> None:
            line = f"BDAT {len(octets)}" + (" LAST" if last else "")
            print("C: " + line)
            for text in octets.split(b"\r\n")[: -1 if octets.endswith(b"\r\n") else None]:
                print("C: " + text.decode())
            sock.sendall(line.encode() + b"\r\n" + octets)
            reply()

        reply()
        command("EHLO client.test")
        command("MAIL FROM:<sender@client.test>")
        command("RCPT TO:<bdat-import@record.test>")
        chunk(MESSAGE[:_FIRST], last=False)
        chunk(MESSAGE[_FIRST:_SECOND], last=False)
        chunk(MESSAGE[_SECOND:], last=True)
        command("QUIT")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
