package source

import "strconv"

// linkTypeNames names LINKTYPE_ values that capture files commonly carry
// but the decoder does not read, for error messages. A table here rather
// than gopacket/layers' LinkType.String: importing layers costs every
// go-metro process about 6 MiB of resident memory (tables its init fills),
// more than the rest of an idle instance.
var linkTypeNames = map[uint32]string{
	0: "Null", 1: "Ethernet", 6: "TokenRing", 9: "PPP", 10: "FDDI", 50: "PPP_HDLC",
	101: "Raw", 105: "IEEE802_11", 113: "LinuxSLL", 117: "PFLog", 119: "PrismHeader",
	127: "IEEE80211Radio", 147: "USER0", 195: "IEEE802_15_4", 220: "USBLinuxMMapped",
	228: "IPv4", 229: "IPv6", 276: "LinuxSLL2",
}

func linkTypeName(v uint32) string {
	if n, ok := linkTypeNames[v]; ok {
		return n
	}
	return "LINKTYPE_" + strconv.FormatUint(uint64(v), 10)
}
