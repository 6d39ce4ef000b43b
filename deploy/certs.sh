#!/usr/bin/env bash
# Makes the project CA and component certificates with openssl.
#
#   deploy/certs.sh [--dir=DIR] [--days=N] [--san=SAN[,SAN...]] NAME...
#
# In DIR (default ./nightshift-tls): ca.pem and ca.key (made on first use,
# reused after, so more components can be added later), and for each NAME
# NAME.pem (certificate, CN=NAME, signed by the CA) and NAME.key. Keys are
# ECDSA P-256, mode 0600. Every certificate is good for both ends of a
# mutual-TLS link (serverAuth and clientAuth) and names, as subject
# alternative names, localhost, 127.0.0.1, ::1, this host's name and
# addresses, and any --san (e.g. DNS:coord.example.com,IP:10.0.0.5).
# Clients check a server's certificate against the address they dial.
#
# Rotation: run again with the same DIR and NAME: the new certificate
# replaces the old file, and running processes pick it up within their
# refresh interval (new connections), without a restart.
set -euo pipefail
dir=./nightshift-tls days=825 extra_san=""
names=()
for arg in "$@"; do
  case "$arg" in
    --dir=*) dir="${arg#--dir=}" ;;
    --days=*) days="${arg#--days=}" ;;
    --san=*) extra_san="${arg#--san=}" ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "certs.sh: unknown flag $arg" >&2; exit 2 ;;
    *) names+=("$arg") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || { echo "usage: $0 [--dir=DIR] [--days=N] [--san=SAN,...] NAME..." >&2; exit 2; }
command -v openssl >/dev/null || { echo "certs.sh: openssl is not installed (deploy/setup.sh)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca.key" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$((days + 365))" \
    -subj "/O=Nightshift/CN=Nightshift CA $(hostname) $(date +%Y%m%d%H%M%S)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem" 2>/dev/null
  chmod 644 "$dir/ca.pem"
  echo "CA: $dir/ca.pem (its key $dir/ca.key signs every certificate: keep it private)"
fi

san="DNS:localhost,IP:127.0.0.1,IP:::1"
host=$(hostname 2>/dev/null || true)
[ -n "$host" ] && san="$san,DNS:$host"
for ip in $(hostname -I 2>/dev/null || true); do san="$san,IP:$ip"; done
[ -n "$extra_san" ] && san="$san,$extra_san"

for name in "${names[@]}"; do
  case "$name" in */*|.*|ca) echo "certs.sh: '$name' is not a usable name" >&2; exit 2 ;; esac
  openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/$name.key" 2>/dev/null
  openssl req -new -key "$tmp/$name.key" -subj "/O=Nightshift/CN=$name" -out "$tmp/$name.csr" 2>/dev/null
  cat >"$tmp/$name.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EXT
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 -extfile "$tmp/$name.ext" \
    -out "$tmp/$name.pem" 2>/dev/null
  # Key first, certificate last, each by rename: a watcher never sees a
  # certificate without its key.
  mv -f "$tmp/$name.key" "$dir/$name.key"
  chmod 644 "$tmp/$name.pem"
  mv -f "$tmp/$name.pem" "$dir/$name.pem"
  echo "$name: $dir/$name.pem, $dir/$name.key"
done
