#!/bin/sh
# Prints one JSON object a line for each mount that `df -P` reports, or for
# the mounts given as arguments: filesystem, mount point, sizes in KiB and
# the percentage used. POSIX sh, df and awk only.
df -P -k "$@" | awk '
function quoted(text) {
    gsub(/\\/, "\\\\", text)
    gsub(/"/, "\\\"", text)
    return "\"" text "\""
}
NR > 1 {
    mount = $6
    for (i = 7; i <= NF; i++) mount = mount " " $i
    used_percent = $5
    sub(/%$/, "", used_percent)
    printf "{\"filesystem\":%s,\"mount\":%s,\"total_kb\":%.0f,\"used_kb\":%.0f,\"available_kb\":%.0f,\"used_percent\":%.0f}\n",
        quoted($1), quoted(mount), $2, $3, $4, used_percent
}'
