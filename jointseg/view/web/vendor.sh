#!/usr/bin/env bash
# Refresh the viewer's vendored JavaScript from the npm registry, exactly as locked in
# package-lock.json: `npm ci`, then copy the dist files (and their licences) into
# ../static/vendor/. The copies are committed, so running the viewer needs no npm and
# no network; the page loads nothing from a CDN. Run after changing a version here.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --silent
out=../static/vendor
mkdir -p "$out"
cp node_modules/maplibre-gl/dist/maplibre-gl.js \
   node_modules/maplibre-gl/dist/maplibre-gl.css "$out/"
cp node_modules/maplibre-gl/LICENSE.txt "$out/maplibre-gl.LICENSE.txt"
cp node_modules/@maplibre/maplibre-gl-compare/dist/maplibre-gl-compare.js \
   node_modules/@maplibre/maplibre-gl-compare/dist/maplibre-gl-compare.css "$out/"
cp node_modules/@maplibre/maplibre-gl-compare/LICENCE "$out/maplibre-gl-compare.LICENSE.txt"
# record what was copied, so a reviewer can check the files against the lock
node -e 'const l=require("./package-lock.json").packages;
  for (const p of ["node_modules/maplibre-gl","node_modules/@maplibre/maplibre-gl-compare"])
    console.log(p.replace("node_modules/",""), l[p].version, l[p].integrity);' > "$out/VERSIONS.txt"
echo "vendored into $(cd "$out" && pwd):"; ls -1 "$out"
