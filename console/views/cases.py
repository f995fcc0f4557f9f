from console.pending import pending_page

pending_page("cases", 5)
