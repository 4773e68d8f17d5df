#!/bin/sh
# mirror: every line published on $BASE_TOPIC/mirror/in comes back on
# $BASE_TOPIC/mirror/out.  Not Python at all: two mosquitto clients and a pipe.
mosquitto_sub -h "$BROKER_HOST" -p "$BROKER_PORT" -t "$BASE_TOPIC/mirror/in" -q 1 \
    | mosquitto_pub -h "$BROKER_HOST" -p "$BROKER_PORT" -t "$BASE_TOPIC/mirror/out" -q 1 -l
