#!/bin/bash
# webscale web server (user data, run once at first boot). A tiny HTTP service on port 80 that answers the load
# balancer's health check at /health and names the instance at /, so a browser shows which server answered.
# It needs no internet access: python3 ships with Amazon Linux 2023, and the instance id comes from IMDSv2.
set -euo pipefail
TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
meta() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }
ID=$(meta instance-id)
ZONE=$(meta placement/availability-zone)
mkdir -p /srv/www
echo ok > /srv/www/health
cat > /srv/www/index.html <<HTML
<!doctype html><title>webscale</title><h1>webscale</h1><p>Served by $ID in $ZONE.</p>
HTML
cat > /etc/systemd/system/webscale-web.service <<UNIT
[Unit]
Description=webscale web server
After=network-online.target
[Service]
WorkingDirectory=/srv/www
ExecStart=/usr/bin/python3 -m http.server 80
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now webscale-web.service
