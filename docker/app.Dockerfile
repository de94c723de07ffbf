# The example application container of docker-compose.yml (service `app`, profile `app`): the
# hsmlab image with a C compiler and p11-kit's pkcs11.h to build libhsmlab_pkcs11.so, and OpenSC's
# pkcs11-tool as the application. docs/pkcs11.md "Examples".
FROM hsmlab:local
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libp11-kit-dev opensc \
  && rm -rf /var/lib/apt/lists/* \
  && npm run build -w @hsmlab/pkcs11
