// Preloaded (node -r) when bench/suite.sh runs with NODE_RED_NODELAY=1:
// turns Nagle's algorithm off on every TCP socket Node-RED opens. Its MQTT
// client (mqtt.js) leaves it on, so a small publish that follows another
// before the broker's ACK waits for that ACK (up to the 40 ms of a delayed
// ACK). The aggregator and the bench tools turn it off themselves.
"use strict";
const net = require("net");
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  this.setNoDelay(true);
  return connect.apply(this, args);
};
