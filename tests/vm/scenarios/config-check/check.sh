. /lib/vmtest.sh

out=$(holden check -c /etc/holden.toml 2>&1)
status=$?
expect_eq "holden check accepts the scenario config (exit status)" 0 "$status"
case "$out" in
*hog*) pass "holden check prints the program hog" ;;
*) fail "holden check prints the program hog" "output: $out" ;;
esac

printf '[programs.x]\ncommand = 5\n' >/tmp/bad.toml
out=$(holden check -c /tmp/bad.toml 2>&1)
status=$?
expect_eq "holden check refuses a bad config with exit status 2" 2 "$status"
case "$out" in
*bad.toml:2:*) pass "the error names file and line ($out)" ;;
*) fail "the error names file and line" "output: $out" ;;
esac

done_checks
