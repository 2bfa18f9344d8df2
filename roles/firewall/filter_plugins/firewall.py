"""Filters of the firewall role: check firewall rules, shape them for the nftables template,
and tell whether the rules let an address reach a port (the guard against locking out the
SSH session that applies them). Python's ipaddress does the parsing, so the control node
needs nothing beyond ansible-core."""
import ipaddress
import re

EVERYONE = "any"
# nft comments are quoted strings of at most 128 bytes.
_COMMENT_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')


def _network(source):
    return ipaddress.ip_network(str(source).strip(), strict=False)


def _port(value):
    if isinstance(value, bool):
        raise ValueError(value)
    port = int(str(value).strip())
    if not 1 <= port <= 65535:
        raise ValueError(value)
    return port


def firewall_invalid_sources(sources):
    """The entries of a sources list that are neither 'any' nor an address or CIDR."""
    invalid = []
    for source in sources or []:
        if str(source).strip() == EVERYONE:
            continue
        try:
            _network(source)
        except ValueError:
            invalid.append(source)
    return invalid


def firewall_rule_errors(rules, name="firewall_rules"):
    """One message per problem argument_specs cannot see: port range and source syntax."""
    errors = []
    for index, rule in enumerate(rules or []):
        where = f"{name}[{index}]"
        try:
            _port(rule.get("port"))
        except (TypeError, ValueError):
            errors.append(f"{where}.port is {rule.get('port')!r}, not a number from 1 to 65535")
        for source in firewall_invalid_sources(rule.get("sources")):
            errors.append(
                f"{where}.sources has {source!r}, which is neither 'any' nor an IPv4/IPv6 "
                "address or CIDR")
    return errors


def firewall_nft_rules(rules):
    """Rules as the template renders them: sources split by family, overlaps merged, sorted,
    single hosts without a prefix, comments safe to quote."""
    shaped = []
    for rule in rules or []:
        sources = [str(s).strip() for s in rule.get("sources") or []]
        networks = [_network(s) for s in sources if s != EVERYONE]
        by_family = {
            version: [
                str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                for n in ipaddress.collapse_addresses(n for n in networks if n.version == version)
            ]
            for version in (4, 6)
        }
        comment = _COMMENT_UNSAFE.sub("", str(rule.get("comment") or "")).strip()
        shaped.append({
            "port": _port(rule["port"]),
            "proto": rule.get("proto") or "tcp",
            "everyone": EVERYONE in sources,
            "local_containers": bool(rule.get("local_containers")),
            "ipv4": by_family[4],
            "ipv6": by_family[6],
            "comment": comment.encode()[:128].decode(errors="ignore"),
        })
    return shaped


def firewall_allows(rules, address, port, proto="tcp"):
    """Whether a new connection from address to port passes the rules."""
    client = ipaddress.ip_address(str(address).strip())
    if client.version == 6 and client.ipv4_mapped:
        client = client.ipv4_mapped
    for rule in firewall_nft_rules(rules):
        if rule["port"] != _port(port) or rule["proto"] != proto:
            continue
        if rule["everyone"]:
            return True
        if any(client in _network(n) for n in rule[f"ipv{client.version}"]):
            return True
    return False


class FilterModule:
    def filters(self):
        return {
            "firewall_invalid_sources": firewall_invalid_sources,
            "firewall_rule_errors": firewall_rule_errors,
            "firewall_nft_rules": firewall_nft_rules,
            "firewall_allows": firewall_allows,
        }
