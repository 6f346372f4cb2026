#!/bin/sh
# Build the browser code: Mirador 4 (npm registry, pinned by package-lock.json),
# bundled with esbuild into frontend/static/vendor/mirador/, where Django serves it
# (no CDN).   cd frontend && npm ci && sh build.sh
#
# Why bundle instead of copying mirador/dist/mirador.min.js: that UMD file carries
# React's development build, which prints warnings as console errors and runs slower.
# Bundling the ES build with NODE_ENV=production gives React's production build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/static/vendor/mirador"
if [ ! -x "$here/node_modules/.bin/esbuild" ] || [ ! -d "$here/node_modules/mirador" ]; then
    echo "the viewer's npm packages are missing: run 'npm ci' in $here first" >&2
    exit 1
fi
mkdir -p "$out"
"$here/node_modules/.bin/esbuild" "$here/src/mirador.js" --bundle --minify --format=iife \
    --global-name=Mirador --define:process.env.NODE_ENV='"production"' \
    --legal-comments=external --log-level=error --outfile="$out/mirador.min.js"
cp "$here/node_modules/mirador/LICENSE" "$out/LICENSE"
node -e 'console.log(require(process.argv[1]).version)' "$here/node_modules/mirador/package.json" > "$out/VERSION"
echo "mirador $(cat "$out/VERSION") -> $out/mirador.min.js"

# three.js for the mesh viewer: the module build and the two addons the page imports.
three="$here/node_modules/three"
mkdir -p "$here/static/vendor/three/addons"
cp "$three/build/three.module.js" "$three/build/three.core.js" "$three/LICENSE" "$here/static/vendor/three/"
cp "$three/examples/jsm/loaders/STLLoader.js" "$three/examples/jsm/controls/OrbitControls.js" "$here/static/vendor/three/addons/"
echo "three $(node -e 'console.log(require(process.argv[1]).version)' "$three/package.json") -> $here/static/vendor/three/"
