"""The linter's rules: a table of snippets and the (line, code) pairs they yield."""

from __future__ import annotations

import textwrap

import pytest

from parallel_isolation.migrate import CODES, check_source

PAHO = "import paho.mqtt.client as mqtt\n"

CASES = [
    # -- PI101 / PI102 broker host and port ---------------------------------------
    ("connect-literals", PAHO + "def test_x():\n    c = mqtt.Client()\n    c.connect('localhost', 1883)\n",
     [(4, "PI101"), (4, "PI102")]),
    ("connect-any-literal-port", "def test_x(c):\n    c.connect('broker', 18834)\n", [(2, "PI101"), (2, "PI102")]),
    ("host-constant-reported-once", PAHO + "MQTT_HOST = '127.0.0.1'\nMQTT_PORT = 8883\n"
     "def test_x(c):\n    c.connect(MQTT_HOST, MQTT_PORT)\n    c.connect(MQTT_HOST, MQTT_PORT)\n",
     [(2, "PI101"), (3, "PI102")]),
    ("env-dict", "def test_x():\n    env = {'MQTT_BROKER': 'localhost', 'MQTT_PORT': '1883', 'TOPIC_PREFIX': 'p'}\n",
     [(2, "PI101"), (2, "PI102")]),
    ("env-strings", "def test_x():\n    env = ['MQTT_BROKER=localhost', 'MQTT_PORT=18833']\n",
     [(2, "PI101"), (2, "PI102")]),
    ("setenv", "def test_x(monkeypatch):\n    monkeypatch.setenv('MQTT_PORT', '1883')\n", [(2, "PI102"), (2, "PI115")]),
    ("os-environ", "import os\ndef test_x():\n    os.environ['MQTT_BROKER'] = 'localhost'\n", [(3, "PI101"), (3, "PI115")]),
    ("known-port-anywhere", "def test_x():\n    start(['mosquitto', '-p', '1883'], port_hint=8883)\n",
     [(2, "PI102"), (2, "PI102")]),
    ("config-text-listener", "import subprocess\ndef broker(tmp_path):\n    (tmp_path / 'm.conf').write_text('listener 1883\\nallow_anonymous true\\n')\n"
     "    return subprocess.Popen(['mosquitto', '-c', str(tmp_path / 'm.conf')])\n", [(3, "PI102")]),
    ("config-text-inside-a-container-ok", "def broker(d, conf):\n    conf.write_text('listener 1883\\n')\n    d.containers.run('mosquitto', volumes={})\n", []),
    ("mosquitto-pub-command-line", "import subprocess\ndef test_x():\n    subprocess.run('mosquitto_pub -h localhost -p 1883 -t a/b -m x', shell=True)\n",
     [(3, "PI101"), (3, "PI102"), (3, "PI107")]),
    ("address-tuple-constant", PAHO + "BROKER = ('localhost', 1883)\ndef test_x():\n    c = mqtt.Client()\n    c.connect(*BROKER)\n",
     [(2, "PI101"), (2, "PI102")]),
    ("sqlite-connect-is-not-a-broker", "import sqlite3\ndef test_x():\n    sqlite3.connect(':memory:')\n", []),
    ("safe-broker", PAHO + "def test_x(mqtt_broker):\n    c = mqtt.Client()\n    c.connect(mqtt_broker.host, mqtt_broker.port)\n", []),
    # -- PI103 published ports ----------------------------------------------------------
    ("ports-mapping", "def test_x(d):\n    d.containers.run('m', ports={'1883/tcp': 1883, 8080: ('127.0.0.1', 8080)})\n",
     [(2, "PI103"), (2, "PI103")]),
    ("ports-random-ok", "def test_x(d):\n    d.containers.run('m', ports={'1883/tcp': None})\n", []),
    ("docker-cli-publish", "import subprocess\ndef test_x():\n    subprocess.run(['docker', 'run', '-p', '1883:1883', 'm'])\n",
     [(3, "PI103")]),
    # -- PI104 / PI105 / PI106 docker names ---------------------------------------------------------
    ("container-name-one-hazard-two-sites", "def test_x(d):\n    d.containers.run('m', name='mqtt-broker-test')\n    d.containers.get('mqtt-broker-test')\n",
     [(2, "PI104")]),
    ("container-name-in-string", "def test_x(d):\n    d.containers.run('m', name='mqtt-broker-test')\n    url = 'tcp://mqtt-broker-test:1883'\n",
     [(2, "PI104")]),
    ("network-name-one-hazard-two-sites", "def test_x(d):\n    n = d.networks.create('test-net')\n    d.containers.run('m', network='test-net')\n",
     [(2, "PI105")]),
    ("network-list-by-exact-name", "def clean(d):\n    for n in d.networks.list(names=['test-net']):\n        n.remove()\n",
     [(2, "PI105")]),
    # -- PI116 subnets, PI117 image builds ---------------------------------------------------------
    ("fixed-subnet", "from docker.types import IPAMConfig, IPAMPool\nSUBNET = '172.28.0.0/16'\n"
     "def net(d):\n    d.networks.create('n', ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=SUBNET)]))\n",
     [(2, "PI116"), (4, "PI105")]),
    ("docker-cli-subnet", "import subprocess\ndef net():\n    subprocess.run(['docker', 'network', 'create', 'n', '--subnet', '10.9.0.0/24'])\n",
     [(3, "PI116"), (3, "PI105")]),
    ("image-build-by-every-worker", "def build(d):\n    d.images.build(path='.', tag='app:test')\n", [(2, "PI117")]),
    ("host-network", "def test_x(d):\n    d.containers.run('m', network_mode='host')\n", [(2, "PI106")]),
    ("safe-names", "def test_x(d, parallel_test_context):\n    d.containers.run('m', name=parallel_test_context.container_name('b'), network='bridge')\n", []),
    # -- PI107 / PI108 topics ---------------------------------------------------------------------------
    ("bare-topics", PAHO + "def test_x():\n    c = mqtt.Client()\n    c.publish('a/b')\n    c.subscribe('a/#')\n    c.will_set('a/lwt')\n    c.message_callback_add('a/+', print)\n",
     [(4, "PI107"), (5, "PI107"), (6, "PI107"), (7, "PI107")]),
    ("built-topics", PAHO + "def test_x(c, cam):\n    c.publish(f'frigate/{cam}/fire')\n    c.publish('a/' + cam)\n    c.publish('a/%s' % cam)\n    c.publish('a/{}'.format(cam))\n",
     [(3, "PI108"), (4, "PI108"), (5, "PI108"), (6, "PI108")]),
    ("no-client-library-means-plugin-clients", "def test_x(bus, cam):\n    bus.publish('a/b')\n    bus.publish(f'c/{cam}')\n", []),
    ("namespaced-wrapper-class", PAHO + "from parallel_isolation import NamespacedClient\n"
     "class Log:\n    def __init__(self, client: NamespacedClient):\n        self.client = client\n"
     "    def publish(self, topic):\n        self.client.publish(topic)\n"
     "def test_x(bus: Log):\n    bus.publish('a/b')\n    mqtt.Client().publish('a/b')\n", [(10, "PI107")]),
    ("prefixed-f-string-ok", "def test_x(c, prefix):\n    c.publish(f'{prefix}/fire')\n", []),
    ("sys-topics-ok", "def test_x(c):\n    c.subscribe('$SYS/#')\n", []),
    ("unknown-topic-ok", "def test_x(c, topic):\n    c.publish(topic)\n", []),
    ("namespaced-ok", "def test_x(mqtt_client):\n    mqtt_client.publish('a/b')\n", []),
    ("shadowed-mqtt-client-flagged", "import pytest\n@pytest.fixture\ndef mqtt_client():\n    return object()\n"
     "def test_x(mqtt_client):\n    mqtt_client.publish('a/b')\n", [(3, "PI114"), (6, "PI107")]),
    ("publish-single", "from paho.mqtt import publish\ndef test_x():\n    publish.single('a/b', 'x', hostname='localhost', port=1883)\n",
     [(3, "PI107"), (3, "PI101"), (3, "PI102")]),
    # -- PI109 incoming topics ---------------------------------------------------------------
    ("incoming", PAHO + "def on(c, u, msg):\n    return msg.topic == 'a/b' or msg.topic.startswith('a/')\n",
     [(3, "PI109"), (3, "PI109")]),
    ("incoming-without-paho-ok", "def test_x(m):\n    assert m.topic == 'a/b'\n", []),
    ("incoming-keyword-substring-ok", PAHO + "def on(c, u, msg):\n    return 'camera' in msg.topic or msg.topic.endswith('/fire')\n", []),
    ("incoming-copy-compared-later", PAHO + "def test_x():\n    seen = []\n    c = mqtt.Client()\n"
     "    c.on_message = lambda c, u, msg: seen.append({'topic': msg.topic})\n    assert seen[0]['topic'] == 'a/b'\n",
     [(5, "PI109")]),
    ("incoming-copy-matched-with-filters-ok", PAHO + "class Log:\n    def __init__(self):\n        self.messages = []\n"
     "    def on(self, c, u, message):\n        self.messages.append((message.topic, message.payload))\n"
     "    def matching(self, f):\n        return [p for t, p in self.messages if mqtt.topic_matches_sub(f, t)]\n"
     "def test_x():\n    assert Log().matching('a/b') == []\n", [(10, "PI107")]),
    # -- PI110 client ids ------------------------------------------------------------------------
    ("client-ids", PAHO + "def test_x():\n    mqtt.Client(client_id='a')\n    mqtt.Client('b')\n    mqtt.Client(client_id='')\n",
     [(3, "PI110"), (4, "PI110")]),
    ("client-id-with-a-unique-part-ok", PAHO + "import os, uuid\ndef test_x(zone):\n"
     "    mqtt.Client(client_id=f'sensor-{zone}-{uuid.uuid4().hex[:8]}')\n    mqtt.Client(client_id=f'p-{os.getpid()}')\n", []),
    ("client-id-built-without-unique-part", PAHO + "def test_x(zone):\n    mqtt.Client(client_id=f'sensor-{zone}')\n",
     [(3, "PI110")]),
    ("aiomqtt", "import aiomqtt\nasync def test_x():\n    async with aiomqtt.Client(hostname='localhost', port=1883, identifier='gw') as c:\n        await c.publish('g/cmd')\n",
     [(3, "PI101"), (3, "PI102"), (3, "PI110"), (4, "PI107")]),
    # -- PI111 cleanup by name ---------------------------------------------------------------------
    ("cleanup-loop", "def teardown(d):\n    for c in d.containers.list(all=True):\n        if 'test' in c.name:\n            c.remove(force=True)\n",
     [(2, "PI111")]),
    ("cleanup-comprehension", "def teardown(d):\n    [c.remove() for c in d.containers.list() if c.name.startswith('e2e')]\n",
     [(2, "PI111")]),
    ("cleanup-by-label-ok", "def teardown(d, run):\n    for c in d.containers.list(filters={'label': f'run={run}'}):\n        c.remove()\n", []),
    ("prune-pkill", "import os, subprocess\ndef teardown(d):\n    d.networks.prune()\n    subprocess.run(['pkill', '-f', 'mosquitto'])\n    os.system('killall mosquitto')\n",
     [(3, "PI111"), (4, "PI111"), (5, "PI111")]),
    ("process-iter", "import psutil\ndef teardown():\n    for p in psutil.process_iter():\n        if 'mosquitto' in p.name():\n            p.kill()\n",
     [(3, "PI111")]),
    # -- PI112 sleeps ----------------------------------------------------------------------------------
    ("sleep", "import time\nfrom time import sleep\ndef test_x():\n    time.sleep(2)\n    sleep(1)\n", [(4, "PI112"), (5, "PI112")]),
    ("sleep-in-poll-loop-ok", "import time\ndef test_x(ready):\n    while not ready():\n        time.sleep(0.1)\n", []),
    ("sleep-in-loop-that-breaks-ok", "import time\ndef test_x(ready):\n    for _ in range(50):\n        if ready():\n            break\n        time.sleep(0.1)\n", []),
    ("sleep-in-teardown-loop", "import time\ndef down(procs):\n    for p in procs:\n        p.terminate()\n        time.sleep(0.2)\n",
     [(5, "PI112")]),
    ("sleep-in-main-block-ok", "import time\nif __name__ == '__main__':\n    while True:\n        time.sleep(1)\n", []),
    # -- PI113 temp paths -----------------------------------------------------------------------------------
    ("tmp-paths", "from pathlib import Path\nLOG = Path('/tmp/legacy.log')\ndef test_x(run):\n    open(f'/tmp/out-{run}.txt')\n",
     [(2, "PI113"), (4, "PI113")]),
    ("tmp-unique-ok", "import os\ndef test_x():\n    open(f'/tmp/out-{os.getpid()}.txt')\n", []),
    # -- PI114 / PI115 -------------------------------------------------------------------------------
    ("shadowed-broker", "import pytest\n@pytest.fixture(scope='session')\ndef mqtt_broker():\n    yield None\n", [(3, "PI114")]),
    ("env-without-prefix", "def test_x(mqtt_broker):\n    env = {'MQTT_BROKER': mqtt_broker.host}\n", [(2, "PI115")]),
    ("setenv-sequence-without-prefix", "def svc(monkeypatch, mqtt_broker):\n    monkeypatch.setenv('MQTT_BROKER', mqtt_broker.host)\n"
     "    monkeypatch.setenv('MQTT_CLIENT_ID', 'x')\n", [(3, "PI110"), (3, "PI115")]),
    ("env-with-service-env-ok", "def test_x(mqtt_broker, parallel_test_context):\n"
     "    env = {**parallel_test_context.service_env('s'), 'MQTT_BROKER': mqtt_broker.host}\n", []),
    # -- suppressions ----------------------------------------------------------------------------------
    ("suppressed-one-code", "import time\ndef test_x():\n    time.sleep(3)  # isolation: ignore[PI112] waits for nothing\n", []),
    ("suppressed-other-code", "import time\ndef test_x():\n    time.sleep(3)  # isolation: ignore[PI113]\n", [(3, "PI112")]),
    ("suppressed-all", "def test_x(c):\n    c.publish('a/b')  # isolation: ignore\n", []),
]


@pytest.mark.parametrize(("source", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules(source: str, expected: list[tuple[int, str]]) -> None:
    found = sorted((f.line, f.code) for f in check_source(source, "case.py"))
    assert found == sorted(expected)


def test_every_code_has_a_case() -> None:
    covered = {code for case in CASES for _, code in case[2]}
    untested = set(CODES) - covered - {"PI001", "PI002"}
    assert not untested


def test_finding_location_and_text() -> None:
    source = PAHO + "\ndef test_x(c):\n    c.publish(  'fire/trigger', b'1')\n"
    (finding,) = check_source(source, "tests/x.py")
    assert (finding.path, finding.line, finding.col) == ("tests/x.py", 4, 17)
    assert finding.severity == "error"
    assert finding.autofix
    assert str(finding) == (
        "tests/x.py:4:17 PI107 bare topic 'fire/trigger' in publish(); use "
        "topic_namespace.topic(...) [auto-fix]"
    )


def test_not_fixable_findings_say_why() -> None:
    source = PAHO + "client = mqtt.Client(client_id='global')\n"
    (finding,) = check_source(source)
    assert not finding.autofix
    assert finding.message.endswith("(by hand: module-level code runs before any fixture exists)")


def test_warning_severity() -> None:
    (finding,) = check_source("import time\ntime.sleep(1)\n")
    assert (finding.code, finding.severity) == ("PI112", "warning")


@pytest.mark.parametrize(
    "source",
    [
        "def broken(:\n    pass\n",
        "x = (1,\n",
        "class A\n",
        "print 'python 2'\n",
        "\tdef f():\n  pass\n",
    ],
    ids=["bad-def", "unclosed", "no-colon", "python2", "bad-indent"],
)
def test_syntax_error_is_one_finding(source: str) -> None:
    (finding,) = check_source(source, "broken.py")
    assert finding.code == "PI001"
    assert finding.line >= 1
    assert "does not parse" in finding.message


def test_empty_and_clean_sources() -> None:
    assert check_source("") == []
    assert check_source(textwrap.dedent('"""Docstring mentions /tmp/x and 1883."""\n')) == []
