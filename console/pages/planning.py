from console.pending import pending_page

pending_page("planning", 3)
