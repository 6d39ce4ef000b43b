"""An independent client attacking a secured cluster over gRPC (Python's
grpcio, stubs generated from proto/ by the test). Each attempt must be
refused with the expected code; prints one line per attempt and exits 1 on
the first that is not.

usage: adversary.py STUBS_DIR CLUSTER_DIR CONFIG_DIR OTHER_CA_DIR JOB_ID
"""
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from nightshift.v1 import coordinator_pb2 as pb  # noqa: E402
from nightshift.v1 import coordinator_pb2_grpc as rpc  # noqa: E402
from nightshift.v1 import peer_pb2  # noqa: E402

CLUSTER, CONFIG, OTHER, JOB = sys.argv[2:6]
C = open(os.path.join(CLUSTER, "coordinator")).read().strip()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def credentials(ca, cert, key):
    return grpc.ssl_channel_credentials(read(ca), read(key), read(cert))


OURS = credentials(f"{CLUSTER}/tls/ca.pem", f"{CLUSTER}/tls/client.pem", f"{CLUSTER}/tls/client.key")
FOREIGN = credentials(f"{CLUSTER}/tls/ca.pem", f"{OTHER}/intruder.pem", f"{OTHER}/intruder.key")
OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def stub(creds=OURS, address=C):
    return rpc.CoordinatorStub(grpc.secure_channel(address, creds, OPTIONS))


def meta(token):
    return [] if token is None else [("authorization", "Bearer " + token)]


failures = 0


def expect(what, code, call):
    global failures
    try:
        call()
        got = grpc.StatusCode.OK
        detail = ""
    except grpc.RpcError as e:
        got = e.code()
        detail = e.details() or ""
    ok = got == code
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {got.name} {detail[:110]!r}")
    if not ok:
        failures += 1


admin = read(f"{CONFIG}/token").decode().strip()
viewer = stub().CreateToken(pb.CreateTokenRequest(role="viewer", label="adversary"),
                            metadata=meta(admin)).token
s = stub()
U, P, I, R = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)

# No token, a made-up token, a malformed header.
expect("ListJobs without a token", U, lambda: s.ListJobs(pb.ListJobsRequest()))
expect("CancelJob without a token", U, lambda: s.CancelJob(pb.CancelJobRequest(job_id=JOB)))
expect("CancelJob with a made-up token", U,
       lambda: s.CancelJob(pb.CancelJobRequest(job_id=JOB), metadata=meta("nst_" + "A" * 43)))
expect("CancelJob with a Basic header", U,
       lambda: s.CancelJob(pb.CancelJobRequest(job_id=JOB),
                           metadata=[("authorization", "Basic YWRtaW46YWRtaW4=")]))
# ListJobs is served from cached bytes (coordinator/jobs_wire_cache.h):
# they parse to the jobs, and its raw request is still bounded and parsed.
listed = [j.id for j in s.ListJobs(pb.ListJobsRequest(), metadata=meta(viewer), timeout=5).jobs]
print(f"{'ok  ' if JOB in listed else 'FAIL'} viewer ListJobs lists {JOB}: {listed}")
failures += JOB not in listed
raw = grpc.secure_channel(C, OURS, OPTIONS).unary_unary("/nightshift.v1.Coordinator/ListJobs")


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


expect("ListJobs with bytes that are no ListJobsRequest", I,
       lambda: raw(b"\xff\xff", metadata=meta(viewer), timeout=5))
expect("ListJobs with a 20 KB request", R,
       lambda: raw(b"\x7a" + varint(20000) + b"x" * 20000, metadata=meta(viewer), timeout=5))
expect("ListJobs raw without a token", U, lambda: raw(b"", timeout=5))
# A viewer doing admin calls; a viewer doing worker calls.
expect("viewer CancelJob", P, lambda: s.CancelJob(pb.CancelJobRequest(job_id=JOB), metadata=meta(viewer)))
expect("viewer SubmitJob", P, lambda: s.SubmitJob(pb.SubmitJobRequest(), metadata=meta(viewer)))
expect("viewer PublishModel", P,
       lambda: s.PublishModel(pb.PublishModelRequest(job_id=JOB, model_name="m"), metadata=meta(viewer)))
expect("FetchModel without a token", U, lambda: s.FetchModel(pb.FetchModelRequest(model_name="m")))
expect("viewer CreateToken admin", P,
       lambda: s.CreateToken(pb.CreateTokenRequest(role="admin"), metadata=meta(viewer)))
expect("viewer DrainWorker", P, lambda: s.DrainWorker(pb.DrainWorkerRequest(worker="dc-0"), metadata=meta(viewer)))
expect("viewer Register", P,
       lambda: s.Register(pb.RegisterRequest(name="evil", pool=2), metadata=meta(viewer)))

# A worker's join token and an enrolled intruder acting for dc-0.
join = read(f"{CLUSTER}/worker.token").decode().strip()
workers = s.ListWorkers(pb.ListWorkersRequest(), metadata=meta(viewer)).workers
dc0 = next(w for w in workers if w.name == "dc-0")
expect("join token registering dc-0 (enrolled)", P,
       lambda: s.Register(pb.RegisterRequest(name="dc-0", pool=1, peer_address="127.0.0.1:1"),
                          metadata=meta(join)))
intruder = s.Register(pb.RegisterRequest(name="intruder", pool=2, draining=True), metadata=meta(join))
cred = intruder.worker_credential
print(f"ok   the intruder enrolled as {intruder.worker_id} (a worker of its own, draining)")
expect("join token heartbeating as dc-0", P,
       lambda: s.Heartbeat(pb.HeartbeatRequest(worker_id=dc0.id), metadata=meta(join)))
expect("intruder heartbeating as dc-0", P,
       lambda: s.Heartbeat(pb.HeartbeatRequest(worker_id=dc0.id), metadata=meta(cred)))
expect("intruder reporting progress for dc-0", P,
       lambda: s.ReportProgress(pb.ReportProgressRequest(worker_id=dc0.id, job_id=JOB, error="boom"),
                                metadata=meta(cred)))
expect("intruder reporting a final model for dc-0", P,
       lambda: s.UploadCheckpoint(iter([pb.UploadCheckpointRequest(
           worker_id=dc0.id, job_id=JOB, step=1, final=True, chunk=pb.FileChunk(data=b"x"))]),
           metadata=meta(cred)))
expect("intruder draining dc-0", P,
       lambda: s.DrainWorker(pb.DrainWorkerRequest(worker="dc-0"), metadata=meta(cred)))
expect("intruder downloading the job's checkpoint", P,
       lambda: list(s.DownloadModel(pb.DownloadModelRequest(job_id=JOB, checkpoint_step=1),
                                    metadata=meta(cred))))
expect("worker token on an admin call", P,
       lambda: s.CancelJob(pb.CancelJobRequest(job_id=JOB), metadata=meta(cred)))
expect("worker publishing a model", P,
       lambda: s.PublishModel(pb.PublishModelRequest(job_id=JOB, model_name="m"), metadata=meta(cred)))
expect("intruder credential registering dc-0", P,
       lambda: s.Register(pb.RegisterRequest(name="dc-0", pool=1, peer_address="127.0.0.1:1"),
                          metadata=meta(cred)))

# dc-0's own credential (a member gone bad): uploads must be the job's tensors.
member = read(f"{CLUSTER}/scratch/dc-0/credential").decode().strip()
for what, data in [("garbage", b"\x00" * 64),
                   ("a header longer than the file", (10 ** 6).to_bytes(8, "little") + b"{}"),
                   ("a foreign tensor", (lambda h: len(h).to_bytes(8, "little") + h + b"\0" * 4)(
                       b'{"evil":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                       b'"__metadata__":{"format":"nightshift.checkpoint.v1"}}'))]:
    expect(f"dc-0 uploading {what}", I,
           lambda: s.UploadCheckpoint(iter([pb.UploadCheckpointRequest(
               worker_id=dc0.id, job_id=JOB, step=1000000007, chunk=pb.FileChunk(data=data))]),
               metadata=meta(member)))

# Oversized and malformed messages.
expect("SubmitJob of 64 MiB (over the server's limit)", R,
       lambda: s.SubmitJob(pb.SubmitJobRequest(job_id="big", spec={"name": "x" * (64 << 20)}),
                           metadata=meta(admin)))
expect("SubmitJob of 2 MiB (over SubmitJob's limit)", R,
       lambda: s.SubmitJob(pb.SubmitJobRequest(job_id="big", spec={"name": "x" * (2 << 20)}),
                           metadata=meta(admin)))
expect("SubmitJob with a 100 KB name (over the spec's bound)", I,
       lambda: s.SubmitJob(pb.SubmitJobRequest(job_id="big", spec={"name": "x" * 100000}),
                           metadata=meta(admin)))
expect("Register with a 1000-character name", I,
       lambda: s.Register(pb.RegisterRequest(name="n" * 1000, pool=2), metadata=meta(join)))
# (Registered again first: the calls above can outlast its lease on a busy
# machine, and a flood from a worker whose lease ran out is NOT_FOUND.)
again = s.Register(pb.RegisterRequest(name="intruder", pool=2, draining=True), metadata=meta(cred))
expect("Heartbeat flood from one worker", R,
       lambda: [s.Heartbeat(pb.HeartbeatRequest(worker_id=again.worker_id), metadata=meta(cred))
                for _ in range(400)])
raw = grpc.secure_channel(C, OURS, OPTIONS).unary_unary("/nightshift.v1.Coordinator/SubmitJob")
try:
    raw(b"\xff\xff\xff\xff\x0f garbage", metadata=meta(admin))
    print("FAIL malformed SubmitJob bytes: accepted")
    failures += 1
except grpc.RpcError as e:
    print(f"ok   malformed SubmitJob bytes: {e.code().name}")

# A certificate from another CA: no channel at all.
expect("a client certificate from another CA", grpc.StatusCode.UNAVAILABLE,
       lambda: stub(FOREIGN).ListJobs(pb.ListJobsRequest(), metadata=meta(admin), timeout=5))
expect("plaintext to the TLS port", grpc.StatusCode.UNAVAILABLE,
       lambda: rpc.CoordinatorStub(grpc.insecure_channel(C)).ListJobs(
           pb.ListJobsRequest(), metadata=meta(admin), timeout=5))

# A peer not in the generation: our CA's certificate, the job's current
# generation, but not its group key.
job = s.GetJob(pb.GetJobRequest(job_id=JOB), metadata=meta(viewer))
peer = grpc.secure_channel(dc0.peer_address, OURS, OPTIONS)
stream = peer.stream_stream("/nightshift.v1.Peer/Stream",
                            request_serializer=peer_pb2.PeerChunk.SerializeToString,
                            response_deserializer=peer_pb2.PeerAck.FromString)
for what, key in [("without a group key", None), ("with a wrong group key", "0" * 64)]:
    chunk = peer_pb2.PeerChunk(job_id=JOB, generation=job.generation, source_rank=1, tag=1,
                               payload=b"\0" * 1024)
    md = [] if key is None else [("x-nightshift-group-key", key)]
    expect(f"a Peer stream into {JOB} generation {job.generation} {what}", P,
           lambda: list(stream(iter([chunk]), metadata=md, timeout=10)))

sys.exit(1 if failures else 0)
