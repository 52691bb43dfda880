"""A ZooKeeper client for the day-2 tests (kazoo, a client independent of rolecall's own).

    zookeeper.py write HOSTS       create /day2/bNNNN/kNNNNNNNN in order, one every 20 ms, through
                                   any serving server of HOSTS (host:port,...); print `ack N` for
                                   each create the ensemble acknowledged; run until killed.
    zookeeper.py read HOST...      for each HOST on its own: sync, then print `HOST kNNNNNNNN` for
                                   every znode under /day2 that this server has.
    zookeeper.py config HOST       sync, then print /zookeeper/config as HOST has it.
"""

import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.retry import KazooRetry

ROOT = "/day2"


def client(hosts, timeout):
    zk = KazooClient(
        hosts=hosts,
        timeout=10,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
    )
    zk.start(timeout=timeout)
    return zk


def write(hosts):
    zk = client(hosts, 120)
    made = set()
    key = 0
    while True:
        bucket = f"{ROOT}/b{key // 1000:04d}"
        try:
            if bucket not in made:
                zk.ensure_path(bucket)
                made.add(bucket)
            try:
                zk.create_async(f"{bucket}/k{key:08d}", str(key).encode()).get(timeout=5)
            except NodeExistsError:
                # An earlier attempt was applied though its answer was lost: the server says
                # the znode exists, which it only does once the create is committed.
                pass
        except Exception:  # noqa: BLE001 - any failure: not acknowledged, try again
            time.sleep(0.05)
            continue
        print(f"ack {key}", flush=True)
        key += 1
        time.sleep(0.02)


def read(hosts):
    for host in hosts:
        zk = client(host, 20)
        try:
            zk.sync(ROOT)
            try:
                buckets = zk.get_children(ROOT)
            except NoNodeError:
                buckets = []
            for bucket in sorted(buckets):
                for child in zk.get_children(f"{ROOT}/{bucket}"):
                    print(host, child)
        finally:
            zk.stop()
            zk.close()


def config(host):
    zk = client(host, 20)
    try:
        zk.sync("/zookeeper/config")
        data, _ = zk.get("/zookeeper/config")
        print(data.decode())
    finally:
        zk.stop()
        zk.close()


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "write":
        write(args[0])
    elif command == "read":
        read(args)
    elif command == "config":
        config(args[0])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
