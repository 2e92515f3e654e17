#!/bin/sh
# chaos.sh SECONDS SERVICE...: every 3 s, SIGKILL one running replica of each SERVICE (as
# registered in its lifecycle keys website:SERVICE:*), but only while another one runs too:
# `redline up` restarts the victim, and the site must keep answering meanwhile.
# Uses redis-cli on $REDIS_URL (default redis://127.0.0.1:6379/0), on this machine.
url=${REDIS_URL:-redis://127.0.0.1:6379/0}
seconds=$1; shift
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 3
  for service in "$@"; do
    live=""
    for id in $(redis-cli -u "$url" --raw lrange "website:$service:ids" 0 -1); do
      pid=$(redis-cli -u "$url" --raw hget "website:$service:$id" pid)
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && live="$live $pid"
    done
    count=$(echo $live | wc -w)
    if [ "$count" -ge 2 ]; then
      victim=$(echo $live | cut -d' ' -f1)
      kill -9 "$victim" && echo "chaos: killed $service pid $victim ($count running)"
    else
      echo "chaos: $service has $count running: waiting for its restart"
    fi
  done
done
