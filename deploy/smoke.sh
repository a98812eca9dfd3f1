#!/bin/sh
# Builds the image, brings deploy/compose.yaml up (three NATS nodes, two
# engines) and waits until both engines' /readyz say ready; then takes it all
# down again. Needs Docker with its daemon running: without one it says so
# and exits 0. Run from anywhere: sh deploy/smoke.sh
set -eu
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
	echo "deploy/smoke.sh: no Docker daemon here: the image and compose file were not tried"
	exit 0
fi
compose="docker compose -f deploy/compose.yaml -p presence-smoke"
trap '$compose down -v >/dev/null 2>&1 || true' EXIT
$compose up -d --build
for port in 9091 9092; do
	tries=0
	until [ "$(curl -fsS "http://127.0.0.1:$port/readyz" 2>/dev/null)" = "ready" ]; do
		tries=$((tries + 1))
		if [ "$tries" -gt 90 ]; then
			echo "deploy/smoke.sh: the engine on port $port is not ready after 3 minutes:"
			curl -sS "http://127.0.0.1:$port/readyz" || true
			$compose logs --tail 50
			exit 1
		fi
		sleep 2
	done
done
echo "deploy/smoke.sh: both engines ready"
