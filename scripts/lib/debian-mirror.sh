# Sourced by scripts/setup and scripts/capture-kernel-corpus (tested by scripts/check-scripts).
#
# debian_mirror [ROOT]: prints the Debian archive this machine's apt already uses, so that the
# sources the scripts add (bookworm-backports, a private sid state) go to the same mirror: the
# first URI, in ROOT/etc/apt/sources.list.d/*.sources (deb822), then ROOT/etc/apt/sources.list,
# then ROOT/etc/apt/sources.list.d/*.list, of an enabled `deb` source with component main and a
# Debian suite (a codename or stable/testing/unstable, bare or -updates/-backports; security
# archives and other vendors' repositories are passed over). Without one, Debian's own
# redirector. The URI is printed without a trailing slash.
debian_mirror() {
    local root=${1:-} f uri
    local suite_re='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)(-updates|-backports)?$'
    local f822='
        function flush(   n, i, s, ok) {
            if (!found && uri ~ /^https?:\/\// && types ~ /(^|[ \t])deb([ \t]|$)/ &&
                comps ~ /(^|[ \t])main([ \t]|$)/ && tolower(enabled) !~ /^no/) {
                n = split(suites, s, /[ \t]+/)
                for (i = 1; i <= n; i++) if (s[i] ~ re) ok = 1
                if (ok) { print uri; found = 1 }
            }
            types = uri = suites = comps = enabled = key = ""
        }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (key == "uris" && uri == "") { uri = $1 }; next }
        {
            key = tolower(substr($0, 1, index($0, ":") - 1)); v = substr($0, index($0, ":") + 1)
            sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
            if (key == "types") types = v
            else if (key == "uris") { split(v, u, /[ \t]+/); uri = u[1] }
            else if (key == "suites") suites = v
            else if (key == "components") comps = v
            else if (key == "enabled") enabled = v
        }
        END { flush() }'
    local flist='
        $1 == "deb" && !found {
            i = 2
            if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($i !~ /^https?:\/\// || $(i + 1) !~ re) next
            for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; found = 1; next }
        }'
    for f in "$root"/etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v re="$suite_re" "$f822" "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    for f in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk -v re="$suite_re" "$flist" "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    echo "http://deb.debian.org/debian"
}
