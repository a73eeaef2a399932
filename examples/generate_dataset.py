"""Generate the Kitebase demo data set: a month of lifecycle activity.

Writes, into examples/data/:

- ``contacts.jsonl`` and ``contacts.csv``: the people known before March 2026
  (existing customers and leads; the same people in both files);
- ``events.jsonl``: every tracked call from 2026-03-01 to 2026-03-31 (UTC) in
  the Segment spec, one JSON object a line (identify, track, alias), sorted by
  time, with a few duplicate deliveries (same ``messageId``), as a real
  collector would send them.

The story in the data (see docs/samples.md): anonymous readers who identify
later (their page views merge into the new contact), signups from every lead
source, leads whose score rises with pricing views and downloads, MEDDIC facts
arriving from the CRM, demos and purchases, customers who stay active, fade or
go quiet and come back, usage milestones, NPS answers that make advocates,
renewals coming up, unsubscribes and closed accounts.

Deterministic: the same seed always writes byte-identical files. Standard
library only, so it runs anywhere:

    python examples/generate_dataset.py            # default seed, examples/data/
    python examples/generate_dataset.py --seed 7 --out /tmp/data
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SEED = 20260301
MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 4, 1, tzinfo=UTC)  # exclusive
DAYS = [date(2026, 3, 1) + timedelta(days=n) for n in range(31)]
WEBINAR_AT = datetime(2026, 3, 12, 11, 0, tzinfo=UTC)  # 14:00 in Istanbul
WEBINAR_TITLE = "Planning Q2 Without Spreadsheets"

EXISTING_CUSTOMERS = 150
EXISTING_LEADS = 100
NEW_SIGNUPS = 150
ANONYMOUS_ONLY = 120
DUPLICATE_SHARE = 0.02

# zone -> (weight, country, first names, last names, company words)
REGIONS: dict[str, tuple[int, str, list[str], list[str], list[str]]] = {
    "Europe/Istanbul": (30, "TR",
        ["Ayşe", "Mehmet", "Elif", "Can", "Zeynep", "Emre", "Selin", "Burak", "Deniz", "Kerem", "Ece", "Murat"],
        ["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Aydın", "Öztürk", "Arslan", "Doğan", "Koç"],
        ["Anadolu", "Boğaziçi", "Ege", "Marmara", "Kapadokya", "Toros"]),
    "America/New_York": (18, "US",
        ["James", "Emily", "Michael", "Sarah", "David", "Olivia", "Daniel", "Grace", "Ryan", "Chloe"],
        ["Smith", "Johnson", "Carter", "Miller", "Davis", "Garcia", "Lee", "Walker", "Young", "Hall"],
        ["Hudson", "Brightline", "Liberty", "Empire", "Harbor", "Summit"]),
    "Asia/Tokyo": (12, "JP",
        ["Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Kenji", "Mei", "Takumi", "Sakura"],
        ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Nakamura", "Kobayashi"],
        ["Fuji", "Sakura", "Kaze", "Hikari", "Yama", "Midori"]),
    "Asia/Jakarta": (15, "ID",
        ["Putri", "Budi", "Dewi", "Rizky", "Sari", "Agus", "Intan", "Fajar", "Citra", "Bayu"],
        ["Wijaya", "Santoso", "Lestari", "Pratama", "Hidayat", "Kusuma", "Saputra", "Nugroho"],
        ["Nusantara", "Garuda", "Merapi", "Bahari", "Cendana", "Rinjani"]),
    "Asia/Riyadh": (15, "SA",
        ["Faisal", "Noura", "Omar", "Rania", "Khalid", "Layla", "Abdullah", "Sara", "Yousef", "Huda"],
        ["Al-Harbi", "Al-Qahtani", "Al-Otaibi", "Haddad", "Al-Ghamdi", "Al-Zahrani", "Al-Shehri"],
        ["Najd", "Sahara", "Hijaz", "Qamar", "Wadi", "Nakheel"]),
    "Europe/Berlin": (6, "DE",
        ["Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Tom", "Hannah"],
        ["Müller", "Schmidt", "Becker", "Wagner", "Hoffmann", "Schulz"],
        ["Rhein", "Alpen", "Spree", "Nordlicht", "Tanne"]),
    "Europe/London": (4, "GB",
        ["Oliver", "Amelia", "Harry", "Isla", "George", "Ava"],
        ["Taylor", "Brown", "Wilson", "Evans", "Thomas", "Roberts"],
        ["Thames", "Albion", "Kestrel", "Oakridge"]),
}
COMPANY_KINDS = ["Logistics", "Studio", "Health", "Analytics", "Foods", "Architects", "Software", "Media",
                 "Consulting", "Robotics", "Events", "Textiles"]
INDUSTRIES = ["logistics", "agency", "healthcare", "software", "manufacturing", "retail", "education", "finance"]
JOB_TITLES = [  # (title, weight): Directors and VPs score, others do not
    ("Project Manager", 14), ("Operations Manager", 10), ("Team Lead", 10), ("Office Manager", 6),
    ("Engineering Lead", 8), ("Founder", 6), ("Director of Operations", 8), ("Director of IT", 6),
    ("Marketing Director", 5), ("VP Engineering", 4), ("VP Operations", 3), ("Head of Delivery", 6),
]
SOURCES = [("signup_form", 35), ("ebook", 25), ("webinar", 15), ("newsletter", 25)]
EBOOKS = ["The Remote Team Playbook", "The One-Page Project Brief", "Security Review Checklist"]
PLANS = [("team", 55), ("business", 35), ("enterprise", 10)]
PLAN_PRICE = {"team": 12, "business": 24, "enterprise": 40}  # per seat and month
REPS = ["Dana", "Marco", "Aylin", "Hiro"]

PAGES = {
    "security": ["/blog/security/sso-small-teams", "/blog/security/permissions-review", "/blog/security/audits"],
    "remote": ["/blog/remote/async-standups", "/blog/remote/handovers", "/blog/remote/time-zones"],
    "general": ["/blog/project-briefs", "/blog/why-plans-fail", "/blog/saying-no", "/guides/kick-off", "/"],
    "pricing": ["/pricing", "/pricing/business", "/pricing/enterprise"],
}
REFERRERS = ["https://www.google.com/", "https://www.linkedin.com/", "https://news.ycombinator.com/", "", "", ""]
ASCII = str.maketrans({"ş": "s", "Ş": "S", "ı": "i", "İ": "I", "ğ": "g", "ç": "c", "Ç": "C", "ö": "o", "Ö": "O",
                       "ü": "u", "Ü": "U", "é": "e", "á": "a", "í": "i", "ñ": "n"})


# The language people in a country read their email in (project.yaml localization): the
# welcome and nurture emails of the demo go out in Turkish, Japanese, Indonesian and Arabic.
LOCALES = {"TR": "tr", "JP": "ja", "ID": "id", "SA": "ar"}


def weighted(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([value for value, _ in pairs], weights=[weight for _, weight in pairs])[0]


def slug(text: str) -> str:
    return "".join(ch for ch in text.translate(ASCII).lower() if ch.isalnum() or ch == "-").strip("-")


@dataclass
class Person:
    """Someone in the data set; ``known`` people are in the contacts files."""

    id: str
    timezone: str | None
    attributes: dict[str, Any]
    anonymous_id: str | None = None
    tags: set[str] = field(default_factory=set)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "Europe/Istanbul")


class Collector:
    """Collects Segment calls; writes them sorted by time with a few duplicate deliveries."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.calls: list[tuple[datetime, int, dict[str, Any]]] = []

    def _add(self, at: datetime, call: dict[str, Any]) -> datetime:
        at = min(max(at, MONTH_START), MONTH_END - timedelta(seconds=1))
        call["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
        call["messageId"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.calls.append((at, len(self.calls), call))
        return at

    def track(self, at: datetime, event: str, properties: dict[str, Any], *, user: str | None = None,
              anonymous: str | None = None) -> datetime:
        call: dict[str, Any] = {"type": "track"}
        if user:
            call["userId"] = user
        if anonymous:
            call["anonymousId"] = anonymous
        call["event"] = event
        call["properties"] = properties
        return self._add(at, call)

    def identify(self, at: datetime, user: str, traits: dict[str, Any], *, anonymous: str | None = None,
                 timezone: str | None = None) -> datetime:
        call: dict[str, Any] = {"type": "identify", "userId": user}
        if anonymous:
            call["anonymousId"] = anonymous
        call["traits"] = traits
        if timezone:
            call["context"] = {"timezone": timezone}
        return self._add(at, call)

    def alias(self, at: datetime, user: str, previous: str) -> datetime:
        return self._add(at, {"type": "alias", "userId": user, "previousId": previous, "anonymousId": previous})

    def lines(self) -> list[str]:
        """JSON lines in time order; about 2% delivered twice, a little later in the file."""
        ordered = [call for _, _, call in sorted(self.calls, key=lambda item: (item[0], item[1]))]
        lines = [json.dumps(call, ensure_ascii=False, separators=(",", ":")) for call in ordered]
        for index in sorted(self.rng.sample(range(len(lines)), int(len(lines) * DUPLICATE_SHARE)), reverse=True):
            later = min(len(lines), index + self.rng.randint(1, 40))
            lines.insert(later, lines[index])
        return lines


class DataSet:
    """The month's story, one cohort at a time."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.events = Collector(self.rng)
        self.known: list[Person] = []
        self.sequence = 0
        self.anonymous_sequence = 0
        self.emails: set[str] = set()

    # ------------------------------------------------------------ helpers

    def local(self, person: Person, day: date, start_hour: int = 8, end_hour: int = 21) -> datetime:
        """A random instant on ``day`` between the hours, on the person's own clock, in UTC."""
        minutes = self.rng.randint(start_hour * 60, end_hour * 60 - 1)
        naive = datetime.combine(day, time(minutes // 60, minutes % 60, self.rng.randint(0, 59)))
        return naive.replace(tzinfo=person.zone, microsecond=self.rng.randint(0, 999) * 1000).astimezone(UTC)

    def new_id(self) -> str:
        self.sequence += 1
        return f"u{self.sequence:04d}"

    def new_anonymous_id(self) -> str:
        self.anonymous_sequence += 1
        return f"anon-{self.rng.getrandbits(32):08x}"

    def new_person(self, *, with_timezone: bool = True) -> Person:
        zone = weighted(self.rng, [(name, spec[0]) for name, spec in REGIONS.items()])
        _, country, firsts, lasts, words = REGIONS[zone]
        first, last = self.rng.choice(firsts), self.rng.choice(lasts)
        company = f"{self.rng.choice(words)} {self.rng.choice(COMPANY_KINDS)}"
        domain = f"{slug(company.split()[0])}-{slug(company.split()[1])}.example"
        email = f"{slug(first)}.{slug(last)}@{domain}"
        while email in self.emails:
            email = f"{slug(first)}.{slug(last)}{self.rng.randint(2, 99)}@{domain}"
        self.emails.add(email)
        attributes = {
            "email": email, "first_name": first, "last_name": last, "company": company,
            "job_title": weighted(self.rng, JOB_TITLES),
            "company_size": self.rng.choice([4, 8, 12, 18, 25, 40, 60, 90, 120, 180, 240, 350, 500, 1200]),
            "industry": self.rng.choice(INDUSTRIES), "country": country,
        }
        if country in LOCALES:  # no random draw: the rest of the data set stays as it was
            attributes["locale"] = LOCALES[country]
        timezone = zone if with_timezone and self.rng.random() > 0.05 else None
        return Person(self.new_id(), timezone, attributes)

    def browse(self, person: Person, day: date, topic: str, count: int, *, anonymous: bool = False) -> None:
        at = self.local(person, day, 7, 23)
        for _ in range(count):
            path = self.rng.choice(PAGES[topic])
            properties = {"path": path, "title": path.rsplit("/", 1)[-1].replace("-", " ").title() or "Home"}
            referrer = self.rng.choice(REFERRERS)
            if referrer:
                properties["referrer"] = referrer
            if anonymous:
                self.events.track(at, "page_viewed", properties, anonymous=person.anonymous_id)
            else:
                self.events.track(at, "page_viewed", properties, user=person.id)
            at += timedelta(seconds=self.rng.randint(40, 600))

    def app_opens(self, person: Person, first: date, last: date, every: tuple[int, int]) -> None:
        day = first
        while day <= last:
            self.events.track(self.local(person, day, 8, 19), "app_opened",
                              {"platform": weighted(self.rng, [("web", 6), ("desktop", 3), ("ios", 1), ("android", 1)])},
                              user=person.id)
            day += timedelta(days=self.rng.randint(*every))

    def day_between(self, first: int, last: int) -> date:
        return DAYS[self.rng.randint(first, last) - 1]

    # ------------------------------------------------------------ cohorts

    def existing_customers(self, count: int) -> None:
        """Customers imported from billing: active, fading, dormant, returning; milestones, NPS, renewals."""
        for index in range(count):
            person = self.new_person()
            plan = weighted(self.rng, PLANS)
            if index < 15:  # renewals on 15 Mar - 14 Apr: their -14d upsell date falls in March
                since = date(self.rng.choice([2023, 2024, 2025]), 3, 15) + timedelta(days=self.rng.randint(0, 30))
            else:
                since = date(2023, 1, 1) + timedelta(days=self.rng.randint(0, 1150))
            renewal = since.replace(year=2026) if since.replace(year=2026) >= date(2026, 3, 1) else since.replace(year=2027)
            person.attributes.update({
                "plan": plan, "customer_since": since.isoformat(), "renewal_date": renewal.isoformat(),
                "referral_code": f"{slug(person.attributes['first_name']).upper()[:6]}-{self.rng.randint(100, 999)}",
                "sales_rep": self.rng.choice(REPS),
            })
            person.tags.add("customer")
            self.known.append(person)
            behaviour = weighted(self.rng, [("active", 60), ("fading", 18), ("dormant", 8), ("returning", 4), ("silent", 10)])
            person.tags.add(behaviour)
            if behaviour == "active":
                self.app_opens(person, self.day_between(1, 3), DAYS[-1], (1, 3))
            elif behaviour == "fading":
                self.app_opens(person, self.day_between(1, 3), self.day_between(5, 20), (1, 4))
            elif behaviour in ("dormant", "returning"):
                # one early open on 1 March (UTC): 30 quiet days later, on 31 March, they are at risk
                opened = datetime(2026, 3, 1, self.rng.randint(0, 5), self.rng.randint(0, 59), tzinfo=UTC)
                self.events.track(opened, "app_opened", {"platform": "web"}, user=person.id)
                if behaviour == "returning":  # ... and the returning ones open the app again that afternoon
                    back = datetime(2026, 3, 31, self.rng.randint(14, 20), self.rng.randint(0, 59), tzinfo=UTC)
                    self.events.track(back, "app_opened", {"platform": "desktop"}, user=person.id)
            if behaviour in ("active", "fading") and self.rng.random() < 0.45:
                self.milestones(person)
            if self.rng.random() < 0.38:
                score = weighted(self.rng, [(10, 35), (9, 25), (8, 15), (7, 10), (6, 6), (3, 5), (0, 4)])
                at = self.local(person, self.day_between(2, 25), 9, 18)
                self.events.track(at, "nps_submitted", {"score": score}, user=person.id)
                self.events.identify(at + timedelta(seconds=1), person.id, {"nps": score})
            if self.rng.random() < 0.03:
                self.events.track(self.local(person, self.day_between(3, 30)), "unsubscribed",
                                  {"reason": "not_interested"}, user=person.id)
            elif behaviour == "silent" and self.rng.random() < 0.2:
                self.events.track(self.local(person, self.day_between(5, 28), 9, 17), "account_closed",
                                  {"reason": self.rng.choice(["budget", "switched tool", "project ended"])},
                                  user=person.id)

    def milestones(self, person: Person) -> None:
        counts = self.rng.choice([[10], [10, 25], [25, 50, 100], [100], [250, 500], [500, 1000], [1000]])
        days = sorted(self.rng.sample(range(2, 31), len(counts)))
        for day, count in zip(days, counts, strict=True):
            self.events.track(self.local(person, DAYS[day - 1], 8, 22), "milestone_reached",
                              {"kind": "projects", "count": count}, user=person.id)

    def existing_leads(self, count: int) -> None:
        """Leads from before March: they read, download, get hot; MEDDIC arrives; demos and purchases."""
        for _ in range(count):
            person = self.new_person()
            source = weighted(self.rng, SOURCES)
            person.attributes.update({
                "source": source, "lead_status": "new",
                "signed_up_at": (datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(hours=self.rng.randint(0, 1300))
                                 ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            })
            if source in ("ebook", "webinar"):
                person.attributes["content_title"] = self.rng.choice(EBOOKS) if source == "ebook" else WEBINAR_TITLE
            person.tags.add("lead")
            self.known.append(person)
            self.lead_activity(person, first_day=1, intent=self.rng.random())

    def lead_activity(self, person: Person, first_day: int, intent: float) -> None:
        """Reading and buying signals after ``first_day``; ``intent`` (0-1) decides how far they go."""
        for _ in range(self.rng.randint(1, 4)):
            self.browse(person, self.day_between(first_day, 31), self.rng.choice(["security", "remote", "general"]),
                        self.rng.randint(1, 3))
        if intent < 0.3:
            return
        if self.rng.random() < 0.6:
            self.events.track(self.local(person, self.day_between(first_day, 31)), "content_downloaded",
                              {"title": self.rng.choice(EBOOKS), "kind": self.rng.choice(["ebook", "checklist"])},
                              user=person.id)
        if self.rng.random() < 0.35 and first_day <= 12:
            self.events.track(WEBINAR_AT + timedelta(minutes=self.rng.randint(0, 5)), "webinar_attended",
                              {"title": WEBINAR_TITLE, "minutes": self.rng.randint(15, 55)}, user=person.id)
        if intent < 0.55:
            return
        # hot: a burst of pricing views on one day
        earliest = min(max(first_day, 3), 29)
        hot_day = self.rng.randint(earliest, max(earliest, 26))
        self.browse(person, DAYS[hot_day - 1], "pricing", self.rng.randint(2, 4))
        person.tags.add("hot")
        if intent > 0.7 and self.rng.random() < 0.7:
            self.meddic(person, hot_day)
        if intent > 0.75:
            demo_day = min(31, hot_day + self.rng.randint(1, 4))
            booked = self.local(person, DAYS[demo_day - 1], 9, 17)
            demo_at = (booked + timedelta(days=self.rng.randint(1, 5))).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.events.track(booked, "demo_booked", {"demo_at": demo_at, "rep": self.rng.choice(REPS)}, user=person.id)
            person.tags.add("demo")
            if intent > 0.85 and demo_day + 3 <= 31:
                self.purchase(person, self.rng.randint(demo_day + 3, 31))
        elif intent > 0.72 and self.rng.random() < 0.5:
            self.events.identify(self.local(person, DAYS[min(30, hot_day + 2)], 9, 17), person.id,
                                 {"lead_status": "disqualified"})
            person.tags.add("disqualified")

    def meddic(self, person: Person, from_day: int) -> None:
        """The CRM sync sends the whole MEDDIC record each time it grows (three updates)."""
        facts = {
            "metrics": f"Cut status meetings by {self.rng.choice([30, 40, 50])}%",
            "economic_buyer": f"CFO of {person.attributes['company']}",
            "decision_criteria": self.rng.choice(["SSO and audit log", "Data residency in the EU", "Guest access"]),
            "decision_process": "Security review, then budget sign-off",
            "identify_pain": f"Projects tracked in {self.rng.randint(5, 20)} spreadsheets",
            "champion": f"{person.attributes['first_name']} ({person.attributes['job_title']})",
        }
        keys = list(facts)
        complete = self.rng.random() < 0.75
        cut_points = [2, 4, 6 if complete else 5]
        day = from_day
        for cut in cut_points:
            day = min(31, day + self.rng.randint(0, 2))
            traits: dict[str, Any] = {"meddic": {key: facts[key] for key in keys[:cut]}}
            if cut == cut_points[0]:
                traits["sales_rep"] = self.rng.choice(REPS)
            self.events.identify(self.local(person, DAYS[day - 1], 9, 18), person.id, traits)
        person.tags.add("meddic" if complete else "meddic_partial")

    def purchase(self, person: Person, day: int) -> None:
        plan = weighted(self.rng, PLANS[:2])
        seats = self.rng.choice([5, 8, 10, 15, 25, 40])
        at = self.local(person, DAYS[day - 1], 9, 18)
        self.events.track(at, "purchased", {"plan": plan, "amount": PLAN_PRICE[plan] * seats * 12, "seats": seats},
                          user=person.id)
        self.events.identify(at + timedelta(seconds=2), person.id,
                             {"plan": plan, "customer_since": DAYS[day - 1].isoformat()})
        person.tags.add("purchased")
        if day < 31:
            self.app_opens(person, DAYS[day], DAYS[-1], (1, 2))

    def new_signups(self, count: int) -> None:
        """Anonymous readers who become known in March (identify, sometimes via alias) and sign up."""
        for _ in range(count):
            person = self.new_person()
            person.anonymous_id = self.new_anonymous_id()
            signup_day = self.rng.randint(2, 29)
            topic = self.rng.choice(["security", "remote", "general"])
            for _ in range(self.rng.randint(1, 3)):  # anonymous reading before they identify
                self.browse(person, self.day_between(max(1, signup_day - 6), signup_day - 1), topic,
                            self.rng.randint(1, 3), anonymous=True)
            source = weighted(self.rng, SOURCES)
            traits = dict(person.attributes)
            traits.update({"source": source, "lead_status": "new"})
            if source in ("ebook", "webinar"):
                traits["content_title"] = self.rng.choice(EBOOKS) if source == "ebook" else WEBINAR_TITLE
            at = self.local(person, DAYS[signup_day - 1], 7, 23)
            traits["signed_up_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.rng.random() < 0.2:  # the collector links the ids with an alias call first
                self.events.alias(at, person.id, person.anonymous_id)
                self.events.identify(at + timedelta(seconds=1), person.id, traits, timezone=person.timezone)
                person.tags.add("alias")
            else:
                self.events.identify(at, person.id, traits, anonymous=person.anonymous_id, timezone=person.timezone)
            form = {"signup_form": "signup", "ebook": "ebook-" + slug(traits.get("content_title", "")),
                    "webinar": "webinar-q2-planning", "newsletter": "blog-sidebar"}[source]
            self.events.track(at + timedelta(seconds=2), "signed_up", {"source": source, "form": form}, user=person.id)
            if source == "ebook":
                self.events.track(at + timedelta(seconds=30), "content_downloaded",
                                  {"title": traits["content_title"], "kind": "ebook"}, user=person.id)
            if source == "webinar" and signup_day < 12:
                self.events.track(WEBINAR_AT + timedelta(minutes=self.rng.randint(0, 5)), "webinar_attended",
                                  {"title": WEBINAR_TITLE, "minutes": self.rng.randint(15, 55)}, user=person.id)
            person.attributes = traits
            person.tags.update({"new", source})
            if signup_day + 2 <= 30 and self.rng.random() < 0.4:  # clicks the onboarding nurture email
                click = self.local(person, DAYS[min(30, signup_day + self.rng.randint(3, 10))], 9, 20)
                self.events.track(click, "email_clicked", {"journey": "onboarding", "step": "nurture",
                                                           "url": "https://kitebase.test/guides"}, user=person.id)
                person.tags.add("clicked")
            if self.rng.random() < 0.04:
                self.events.track(self.local(person, self.day_between(min(31, signup_day + 1), 31)), "unsubscribed",
                                  {"reason": self.rng.choice(["too_many_emails", "not_relevant"])}, user=person.id)
                person.tags.add("unsubscribed")
            elif signup_day < 28:
                self.lead_activity(person, first_day=signup_day + 1, intent=self.rng.random() * 0.95)

    def anonymous_visitors(self, count: int) -> None:
        """Readers who never leave an email: their page views stay under an anonymous id."""
        for _ in range(count):
            person = Person("", weighted(self.rng, [(name, spec[0]) for name, spec in REGIONS.items()]), {})
            person.anonymous_id = self.new_anonymous_id()
            for _ in range(self.rng.randint(1, 3)):
                self.browse(person, self.day_between(1, 31), self.rng.choice(list(PAGES)), self.rng.randint(1, 3),
                            anonymous=True)

    def build(self) -> None:
        self.existing_customers(EXISTING_CUSTOMERS)
        self.existing_leads(EXISTING_LEADS)
        self.new_signups(NEW_SIGNUPS)
        self.anonymous_visitors(ANONYMOUS_ONLY)

    # ------------------------------------------------------------ output

    def write(self, out: Path) -> dict[str, Any]:
        out.mkdir(parents=True, exist_ok=True)
        contacts = [{"id": p.id, **({"timezone": p.timezone} if p.timezone else {}), "attributes": p.attributes}
                    for p in self.known]
        with (out / "contacts.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
            for contact in contacts:
                handle.write(json.dumps(contact, ensure_ascii=False, separators=(",", ":")) + "\n")
        columns = ["id", "timezone", "email", "first_name", "last_name"]
        for contact in contacts:
            columns.extend(name for name in contact["attributes"] if name not in columns)
        with (out / "contacts.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n")
            writer.writeheader()
            for contact in contacts:
                writer.writerow({"id": contact["id"], "timezone": contact.get("timezone", ""), **contact["attributes"]})
        lines = self.events.lines()
        with (out / "events.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
            handle.write("\n".join(lines) + "\n")
        calls = [json.loads(line) for line in lines]
        kinds = Counter(call.get("event", call["type"]) for call in calls)
        return {
            "contacts": len(contacts), "events": len(lines),
            "duplicates": len(lines) - len({call["messageId"] for call in calls}),
            "bytes": (out / "events.jsonl").stat().st_size, "by_kind": dict(sorted(kinds.items())),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data",
                        help="output folder (default: examples/data)")
    args = parser.parse_args()
    data = DataSet(args.seed)
    data.build()
    summary = data.write(args.out)
    print(f"{summary['contacts']} contacts, {summary['events']} events "
          f"({summary['duplicates']} duplicate deliveries), events.jsonl {summary['bytes'] / 1e6:.2f} MB")
    for kind, number in summary["by_kind"].items():
        print(f"  {kind:20} {number}")


if __name__ == "__main__":
    main()
