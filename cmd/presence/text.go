package main

// contactText is a contact as the commands print it for people: the friendly
// name and the contact ("Alice <sip:alice@contoso.com>"), or the contact alone
// when it has no name.
func contactText(contact, name string) string {
	if name == "" {
		return contact
	}
	return name + " <" + contact + ">"
}
