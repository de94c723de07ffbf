#!/bin/sh
# Builds libhsmlab_pkcs11.so with the system's C compiler against the system's PKCS#11 header
# (p11-kit's). The root build runs this after tsc; without a compiler or the header the rest of
# hsmlab still builds and runs (`npm start` on a machine without them), so it says what is missing
# and stops without failing.
cd "$(dirname "$0")" || exit 1
if ! command -v cc > /dev/null 2>&1 || ! pkg-config --exists p11-kit-1 2> /dev/null; then
  echo "hsmlab: libhsmlab_pkcs11.so not built: it needs a C compiler, pkg-config and p11-kit's headers (Debian: apt-get install gcc pkg-config libp11-kit-dev)" >&2
  exit 0
fi
mkdir -p build
exec cc -std=c11 -shared -fPIC -O2 -g -Wall -Wextra -Werror -fvisibility=hidden $(pkg-config --cflags p11-kit-1) \
  -o build/libhsmlab_pkcs11.so src/hsmlab_pkcs11.c -pthread
