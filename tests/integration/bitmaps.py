#!/usr/bin/env python3
"""Bitmap helpers for the change-tracking tests.

  bitmaps.py bits FILE                  set block numbers, space separated
  bitmaps.py covers A B BS BITMAP...    exit 1 if a BS block differing
                                        between images A and B is set in
                                        none of the bitmaps
  bitmaps.py ones FILE BLOCKS           exit 1 unless exactly blocks
                                        0..BLOCKS-1 are set
"""
import sys


def bits(data):
    return [i for i in range(len(data) * 8) if data[i // 8] >> (i % 8) & 1]


def main():
    cmd = sys.argv[1]
    if cmd == "bits":
        print(" ".join(map(str, bits(open(sys.argv[2], "rb").read()))))
    elif cmd == "covers":
        a, b, bs = sys.argv[2], sys.argv[3], int(sys.argv[4])
        acc = set()
        for path in sys.argv[5:]:
            acc |= set(bits(open(path, "rb").read()))
        missing, differing = [], 0
        with open(a, "rb") as fa, open(b, "rb") as fb:
            i = 0
            while True:
                x, y = fa.read(bs), fb.read(bs)
                if not x and not y:
                    break
                if x != y:
                    differing += 1
                    if i not in acc:
                        missing.append(i)
                i += 1
        if missing:
            print(f"blocks changed but not in any bitmap: {missing[:20]}")
            sys.exit(1)
        print(f"{differing} changed blocks, all covered by {len(acc)} bits")
    elif cmd == "ones":
        n = int(sys.argv[3])
        got = bits(open(sys.argv[2], "rb").read())
        if got != list(range(n)):
            print(f"expected blocks 0..{n - 1} set, got {len(got)} bits")
            sys.exit(1)
    else:
        sys.exit(2)


main()
