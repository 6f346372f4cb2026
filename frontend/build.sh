#!/bin/sh
# Put Mirador's prebuilt UMD bundle (from the npm registry, pinned in package-lock.json)
# into frontend/static/vendor/mirador/, where Django serves it (no CDN).
#   cd frontend && npm ci && sh build.sh
# The bundle is self-contained (React, MUI and OpenSeadragon inside), so there is no
# bundler step: we only copy the published dist files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dist="$here/node_modules/mirador/dist"
out="$here/static/vendor/mirador"
if [ ! -f "$dist/mirador.min.js" ]; then
    echo "mirador is not installed: run 'npm ci' in $here first" >&2
    exit 1
fi
mkdir -p "$out"
cp "$dist/mirador.min.js" "$out/mirador.min.js"
cp "$here/node_modules/mirador/LICENSE" "$out/LICENSE"
node -e 'const p=require(process.argv[1]);console.log(p.version)' "$here/node_modules/mirador/package.json" > "$out/VERSION"
echo "mirador $(cat "$out/VERSION") -> $out"
