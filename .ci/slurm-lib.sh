# Shared by .ci/slurm.sh and .ci/slurm-two-nodes.sh (sourced; the caller defines log and die).

PACKAGES="slurmctld slurmd slurm-client munge"

install_packages() {
  local missing=""
  for p in $PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found; install$missing by hand"
  log "installing$missing"
  # The packages' install scripts would start the daemons through invoke-rc.d; a policy-rc.d
  # that answers 101 forbids that while we install (we start the daemons ourselves).
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
  local rc=$?
  [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

field() { sed -E "s/.*[ ]$1=([0-9]+).*/\1/" <<<" $2"; }
