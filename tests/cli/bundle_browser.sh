#!/usr/bin/env bash
# The response bundle's index.html in a real browser (headless Chromium from Debian): every inline PNG decodes to
# its size, every WAV and MP4/WebM loads its metadata with no media error. A negative control (a bundle page with a
# corrupted image and video) must be reported as failing, so the check itself cannot pass vacuously.
# usage: bash tests/cli/bundle_browser.sh <spider-binary> <source-dir>
set -u
SPIDER="$1"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
BROWSER=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$BROWSER" ] || fail "no chromium on PATH (scripts/setup.sh installs the Debian package 'chromium')"

cat > "$TMP/answer.txt" <<'TXT'
[OUTPUT]Here: <IMAGE>a red circle[IMAGE0]</IMAGE> and <AUDIO>a high whistle[AUDIO0]</AUDIO>, <VIDEO>a blue ball[VIDEO0]</VIDEO><BOX>red[BOX0]</BOX><MASK>red[MASK0]</MASK>.[END]
TXT

# Appended before </body>: after load, one line that lists every media element's state.
cat > "$TMP/check.html" <<'HTML'
<script>
(function () {
  function report() {
    var r = [];
    document.querySelectorAll('img').forEach(function (e, i) {
      r.push('img' + i + ':' + (e.complete && e.naturalWidth > 0 ? 'ok ' + e.naturalWidth + 'x' + e.naturalHeight : 'FAIL'));
    });
    document.querySelectorAll('audio,video').forEach(function (e, i) {
      var s = e.error ? 'FAIL error ' + e.error.code
            : e.readyState >= 1 ? 'ok ' + e.duration.toFixed(2) + 's' + (e.videoWidth ? ' ' + e.videoWidth + 'x' + e.videoHeight : '')
            : 'FAIL readyState ' + e.readyState;
      r.push(e.tagName.toLowerCase() + i + ':' + s);
    });
    var p = document.createElement('pre');
    p.textContent = 'SPIDER' + '-CHECK ' + r.join(' | ') + ' END';
    document.body.appendChild(p);
  }
  window.addEventListener('load', function () { setTimeout(report, 1500); });
})();
</script>
HTML

# check PAGE -> prints the report line of PAGE opened in the browser
check() {
  python3 - "$1" "$TMP/check.html" "$TMP/page.html" <<'PY'
import sys
page, check, out = sys.argv[1:4]
html = open(page, encoding="utf-8").read()
assert html.count("</body>") == 1, "index.html must have exactly one </body>"
open(out, "w", encoding="utf-8").write(html.replace("</body>", open(check).read() + "</body>"))
PY
  timeout 120 "$BROWSER" --headless=new --no-sandbox --disable-gpu --no-first-run --user-data-dir="$TMP/profile" \
    --autoplay-policy=no-user-gesture-required --virtual-time-budget=8000 --dump-dom "file://$TMP/page.html" \
    2> "$TMP/browser.err" | grep -o 'SPIDER-CHECK .* END'
}

for fmt in mp4 webm; do
  "$SPIDER" run -p "make things" --script "$TMP/answer.txt" --out "$TMP/$fmt" --seed 5 --size 32 \
    --video-format $fmt -q > /dev/null 2> "$TMP/err.txt" || { cat "$TMP/err.txt"; fail "spider run ($fmt) failed"; }
  line=$(check "$TMP/$fmt/index.html") || { tail -5 "$TMP/browser.err"; fail "$fmt: no report from the browser"; }
  echo "$fmt: $line"
  # 5 items: image, audio, video, box overlay, mask overlay -> 3 images, 1 audio, 1 video
  [ "$(grep -o 'img[0-9]*:ok' <<< "$line" | wc -l)" = 3 ] || fail "$fmt: not every image decoded: $line"
  grep -q 'audio[0-9]*:ok 1\.00s' <<< "$line" || fail "$fmt: the WAV did not load: $line"
  grep -q 'video[0-9]*:ok [0-9.]*s 32x32' <<< "$line" || fail "$fmt: the video did not load: $line"
  grep -q FAIL <<< "$line" && fail "$fmt: $line"
done

# Negative control: corrupt the PNG and video payloads of a real bundle page; the check must report FAIL for both.
python3 - "$TMP/mp4/index.html" "$TMP/bad.html" <<'PY'
import re, sys
html = open(sys.argv[1], encoding="utf-8").read()
html = re.sub(r'data:image/png;base64,[A-Za-z0-9+/=]{40}', 'data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', html, count=1)
html = re.sub(r'data:video/mp4;base64,[A-Za-z0-9+/=]+', 'data:video/mp4;base64,AAAAAAAAAAAAAAAA', html, count=1)
open(sys.argv[2], "w", encoding="utf-8").write(html)
PY
line=$(check "$TMP/bad.html") || fail "negative control: no report from the browser"
echo "corrupted: $line"
grep -q 'img0:FAIL' <<< "$line" || fail "negative control: a corrupted PNG was not detected: $line"
grep -q 'video[0-9]*:FAIL' <<< "$line" || fail "negative control: a corrupted video was not detected: $line"
echo "1 passed, 0 failed"
