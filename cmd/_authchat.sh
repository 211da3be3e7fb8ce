#!/bin/sh
# authchat, as `deno task bundle` writes it into dist/: runs authchat.js (the program) through
# authchat-launch.js (the launcher), both beside this script, so each subcommand gets Deno's unstable
# network API and exactly the permissions its arguments and configuration need. Copy the three files
# anywhere; Deno 2.9 must be on PATH (or named by $DENO).
#
#   ./authchat server | seed | keygen | client [options]     (./authchat --help lists them)
set -eu
self=$0
# Through symbolic links to the real file, so the two scripts are found beside it.
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in
    /*) self=$link ;;
    *) self=$(dirname "$self")/$link ;;
  esac
done
here=$(CDPATH='' cd -- "$(dirname -- "$self")" && pwd)
deno=${DENO:-deno}
# The launcher runs exactly this executable, so it is the one it may run (see cmd/launch.ts in the source).
exec_path=$("$deno" eval --no-config 'console.log(Deno.execPath())')
exec "$deno" run --quiet --no-prompt --no-config --allow-read --allow-env "--allow-run=$exec_path" \
  "$here/authchat-launch.js" "$@"
