#!/bin/bash
# Checks the nginx configuration in docs/deployment.md: two Herald nodes on one Redis behind nginx, all on loopback
# and free ports; a stream on each node through nginx (/sub, /sse, /ws) must receive a publish made through nginx and
# one made with redis-cli. Needs redis-server, curl and nginx (NGINX=/path/to/nginx). Not part of npm test.
set -u
cd "$(dirname "$0")/.."
NGX=${NGINX:-nginx}
W=$(mktemp -d); mkdir -p $W/logs; trap "rm -rf $W" EXIT
RP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning > $W/redis.log 2>&1 &
RPID=$!
sleep 0.3
P1=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
P2=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
NP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
node bin/herald.js serve --dev --port $P1 --broker redis://127.0.0.1:$RP > $W/h1.log 2>&1 & H1=$!
node bin/herald.js serve --dev --port $P2 --broker redis://127.0.0.1:$RP > $W/h2.log 2>&1 & H2=$!
# Extract the nginx block from the doc, point it at the two nodes and a loopback port.
python3 - "$P1" "$P2" "$NP" > $W/herald.conf <<'PY'
import re,sys
doc=open('docs/deployment.md').read()
conf=re.search(r'```nginx\n(.*?)```',doc,re.S).group(1)
p1,p2,np=sys.argv[1:]
conf=re.sub(r'    server 10\.0\.0\.11:8080', f'    server 127.0.0.1:{p1}', conf)
conf=re.sub(r'    server 10\.0\.0\.12:8080', f'    server 127.0.0.1:{p2}', conf)
conf=re.sub(r'    server 10\.0\.0\.13:8080.*\n', '', conf)
conf=conf.replace('listen 80;', f'listen 127.0.0.1:{np};')
print(conf)
PY
cat > $W/nginx.conf <<NG
daemon off; worker_processes 1; pid $W/nginx.pid; error_log $W/logs/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path $W/body; proxy_temp_path $W/proxy; fastcgi_temp_path $W/fcgi; uwsgi_temp_path $W/uwsgi; scgi_temp_path $W/scgi; include $W/herald.conf; }
NG
$NGX -p $W -c $W/nginx.conf -t 2>&1 | tail -2
$NGX -p $W -c $W/nginx.conf > $W/nginx.out 2>&1 & NPID=$!
sleep 1.5
# Two streams through nginx (least_conn puts them on different nodes), publish through nginx, both must get it.
curl -sN "http://127.0.0.1:$NP/sub?channel=abc" > $W/s1.out & C1=$!
curl -sN "http://127.0.0.1:$NP/sse?channel=abc" > $W/s2.out & C2=$!
node -e "
const WebSocket = require(process.cwd() + '/node_modules/ws');
const ws = new WebSocket('ws://127.0.0.1:$NP/ws?channel=abc');
ws.on('open', () => console.log('ws open through nginx'));
ws.on('message', (m) => { console.log('ws got', String(m)); });
setTimeout(() => process.exit(0), 2500);
" > $W/ws.out 2>&1 & C3=$!
sleep 0.7
curl -s -X POST "http://127.0.0.1:$NP/api/publish" -H 'Content-Type: application/json' -d '{"channel":"abc","data":"via nginx"}'; echo
redis-cli -p $RP PUBLISH abc 'via redis' >/dev/null
sleep 0.5
echo "--- /sub through nginx:"; cat $W/s1.out
echo "--- /sse through nginx:"; cat $W/s2.out
echo "--- /ws through nginx:"; wait $C3; cat $W/ws.out
echo "--- sessions per node:"; for p in $P1 $P2; do curl -s http://127.0.0.1:$p/metrics | grep '^herald_sessions'; done
kill $C1 $C2 $NPID $H1 $H2 $RPID 2>/dev/null; wait 2>/dev/null
