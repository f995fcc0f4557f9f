from console.pending import pending_page

pending_page("dispatch", 5)
