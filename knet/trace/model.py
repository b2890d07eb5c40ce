"""What a trace found, as data: the path hop by hop, each hop's steps, the
outcome; printed as text or as records (`-o json`). Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Step:
    """One thing that happened to the packet in one namespace. `kind` is one of
    send, in, service, policy, masquerade, out, deliver, drop, reject, note."""

    kind: str
    text: str
    fields: dict = field(default_factory=dict)


@dataclass
class Hop:
    place: str  # default/client, node/worker-1, ext
    role: str  # "pod on worker-2", "node", "outside host"
    steps: list[Step] = field(default_factory=list)


@dataclass
class Trace:
    source: str
    destination: str
    protocol: str
    port: int
    source_port: int
    hops: list[Hop] = field(default_factory=list)
    reply: list[str] = field(default_factory=list)  # the places the reply crossed, in order
    reply_text: str = ""
    verdict: str = "unknown"  # delivered, dropped, rejected, unknown
    reason: str = ""
    result: str = ""  # what the sender saw: connected, refused, timeout, answered, unreachable
    elapsed_ms: float = 0.0

    def steps(self, kind: str) -> list[Step]:
        return [s for h in self.hops for s in h.steps if s.kind == kind]

    def records(self) -> list[dict]:
        """One record per step, between a first (the flow) and a last (the outcome)."""
        out: list[dict] = [{"record": "trace", "source": self.source, "destination": self.destination,
                            "protocol": self.protocol, "port": self.port, "sourcePort": self.source_port}]
        for i, hop in enumerate(self.hops, 1):
            for s in hop.steps:
                out.append({"record": "step", "hop": i, "place": hop.place, "kind": s.kind, "text": s.text,
                            **s.fields})
        out.append({"record": "result", "verdict": self.verdict, "reason": self.reason, "result": self.result,
                    "reply": self.reply, "replyText": self.reply_text, "elapsedMs": round(self.elapsed_ms, 1)})
        return out

    def render(self) -> str:
        lines = [f"trace {self.source} -> {self.destination} {self.protocol}"
                 + (f", source port {self.source_port}" if self.protocol != "ICMP" else "")]
        for i, hop in enumerate(self.hops, 1):
            lines.append(f"{i:>3}  {hop.place} ({hop.role})")
            lines += [f"       {s.text}" for s in hop.steps]
        if self.reply_text:
            lines.append(f"reply: {self.reply_text}")
        verdict = {"delivered": "delivered", "dropped": "dropped", "rejected": "rejected"}.get(self.verdict, "unknown")
        lines.append(f"result: {verdict}" + (f": {self.reason}" if self.reason else "")
                     + (f"; the sender saw {self.result}" if self.result else "")
                     + f" ({self.elapsed_ms:.0f} ms)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)
